import Foundation
import KafkaClient
import Logging
import PGOutput
import RelayCore
import Synchronization

/// The delivery state machine behind one lock, with its side effects: metrics, health,
/// and waking the capture thread when acknowledgements make room. Every decision is the
/// state machine's (`DeliveryStateMachine`); this type only carries them out, after the
/// lock is released.
final class DeliveryLine: Sendable {
    private let machine: Mutex<DeliveryStateMachine>
    /// The capture thread sleeps on this while the window is full or while it drains.
    private let room = DispatchSemaphore(value: 0)
    private let sleepers = Atomic<Int>(0)
    private let logger: Logger
    private let metrics: RelayMetrics
    private let health: RelayHealth
    /// Runs between a wait's check and its sleep: lets a test land an acknowledgement in
    /// exactly the window where a wake-up used to be lost.
    private let beforeSleep: (@Sendable () -> Void)?

    init(configuration: RelayConfiguration, logger: Logger, metrics: RelayMetrics, health: RelayHealth,
         beforeSleep: (@Sendable () -> Void)? = nil) {
        machine = Mutex(DeliveryStateMachine(maxEvents: configuration.maxInFlightEvents, maxBytes: configuration.maxInFlightBytes))
        self.logger = logger
        self.metrics = metrics
        self.health = health
        self.beforeSleep = beforeSleep
    }

    // MARK: session and stop

    func reset(confirmed: LSN) {
        machine.withLock { $0.reset(confirmed: confirmed) }
        metrics.inFlight.record(0)
    }

    func requestRestart(_ reason: String) {
        machine.withLock { $0.requestRestart(reason) }
        wake()
    }

    var pendingRestart: String? { machine.withLock { $0.restartReason } }

    /// The pending restart is a pause's, already reported with its fix.
    var restartIsPause: Bool { machine.withLock { $0.restartIsPause } }

    func requestStop(deadline: ContinuousClock.Instant) {
        machine.withLock { $0.requestStop(deadline: deadline) }
        wake()
    }

    var stopDeadline: ContinuousClock.Instant? { machine.withLock { $0.stopDeadline } }

    // MARK: capture

    func beginTransaction(commitTime: Int64) { machine.withLock { $0.beginTransaction(commitTime: commitTime) } }
    @discardableResult
    func commitTransaction(endLSN: LSN) -> Bool { machine.withLock { $0.commitTransaction(endLSN: endLSN) } }
    func observeServerWALEnd(_ lsn: LSN) { _ = machine.withLock { $0.observeServerWALEnd(lsn) } }
    var confirmableLSN: LSN { machine.withLock { $0.confirmableLSN } }
    var inFlightEvents: Int { machine.withLock { $0.inFlightEvents } }

    /// A place in the window and a token for an event of `size` bytes. Waits while the
    /// window is full, calling `whileBlocked` about every 50 ms; throws `SessionRestart`
    /// when the session must start over and `StopDeadlinePassed` after a stop's deadline.
    func reserve(size: Int, whileBlocked: () throws -> Void) throws -> LSNTracker.Token {
        while true {
            let decision = sleepUnless(upTo: .milliseconds(50)) { () -> DeliveryStateMachine.ReserveAction? in
                let action = machine.withLock { $0.reserve(bytes: size, now: .now) }
                if case .wait = action { return nil }
                return action
            }
            switch decision {
            case .publish(let token): return token
            case .restartSession(let reason): throw SessionRestart(reason: reason)
            case .abandon: throw StopDeadlinePassed(unacknowledged: inFlightEvents)
            case .wait, nil: try whileBlocked()
            }
        }
    }

    /// Waits until nothing is in flight, or `deadline` (or the stop's, if earlier) passes.
    func drain(until deadline: ContinuousClock.Instant) -> DeliveryStateMachine.DrainState {
        drain(until: deadline, whileWaiting: {})
    }

    func drain(until deadline: ContinuousClock.Instant, whileWaiting: () throws -> Void) rethrows -> DeliveryStateMachine.DrainState {
        while true {
            let state = sleepUnless(upTo: .milliseconds(50)) { () -> DeliveryStateMachine.DrainState? in
                let state = machine.withLock { $0.drainState(now: .now, deadline: deadline) }
                return state == .waiting ? nil : state
            }
            if let state { return state }
            try whileWaiting()
        }
    }

    /// Returns what `check` found, or sleeps until an acknowledgement, a restart or a stop
    /// request, or `limit`, and returns nil. The sleeper registers BEFORE the check: an
    /// acknowledgement landing between check and sleep then still signals. Registering
    /// after the check lost that wake-up and slept the full 50 ms, which notify mode paid
    /// as commit→ack latency on every drain it hit. (The lock inside `check` orders the
    /// registration before any later acknowledgement's look at `sleepers`.) A signal no one
    /// waited for only makes a later sleep return early, and every caller checks again.
    private func sleepUnless<T>(upTo limit: Duration, _ check: () -> T?) -> T? {
        sleepers.add(1, ordering: .sequentiallyConsistent)
        defer { sleepers.subtract(1, ordering: .sequentiallyConsistent) }
        if let found = check() { return found }
        beforeSleep?()
        _ = room.wait(timeout: .now() + .nanoseconds(Int(limit.components.attoseconds / 1_000_000_000 + limit.components.seconds * 1_000_000_000)))
        return nil
    }

    private func wake() {
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 { room.signal() }
    }

    // MARK: outcomes (poller thread, dead-letter worker)

    /// Events are done: delivered (`published`), or durably dead-lettered.
    func acknowledge(_ events: [(token: LSNTracker.Token, size: Int)], published: Bool) {
        let (effects, inFlight) = machine.withLock { machine in
            (machine.acknowledge(events, published: published), machine.inFlightEvents)
        }
        wake()
        metrics.inFlight.record(inFlight)
        health.noteAck()
        if let resumed = effects.resumed {
            logger.notice("publishing resumed", metadata: ["topic": "\(resumed.topic)", "problem": "\(resumed.problem)"])
            metrics.paused(topic: resumed.topic, problem: resumed.problem.kind).record(0)
            health.setPause(nil)
        }
        guard published, effects.accepted > 0 else { return }
        metrics.published.increment(by: effects.accepted)
        health.notePublished(effects.accepted)
        let now = RelayMetrics.postgresNow()
        for commitTime in effects.commitTimes { metrics.recordSinceCommit(commitTime, on: metrics.commitToAck, now: now) }
    }

    /// A produce call or a delivery report failed; returns what to do with the row. A
    /// pause or a restart is already requested when this returns.
    func failed(topic: String, error: KafkaError, stage: DeliveryFault.Stage) -> DeliveryStateMachine.FailureAction {
        let action = machine.withLock { $0.failed(topic: topic, errorName: error.name, message: error.message, stage: stage) }
        switch action {
        case .pause(let pause, let firstReport):
            // Each retry of a paused topic fails again until the operator fixes it: the
            // cause and its fix are said once, the retries only at debug level.
            let message: Logger.Message = firstReport
                ? "publishing paused: an operator must fix the Kafka side; the relay retries with backoff and resumes by itself"
                : "publishing still paused"
            logger.log(level: firstReport ? .error : .debug, message, metadata: [
                "topic": "\(pause.topic)", "problem": "\(pause.problem)", "error": "\(pause.detail)", "fix": "\(pause.fix)"])
            metrics.paused(topic: pause.topic, problem: pause.problem.kind).record(1)
            health.setPause("publishing paused on topic \(pause.topic): \(pause.problem). Fix: \(pause.fix)")
            wake()
        case .restartSession:
            wake()
        case .ignore, .deadLetter:
            break
        }
        return action
    }
}

/// The capture session must start over from the slot (producer fatal error, unexpected
/// delivery failure, a pause). Not halting: nothing is lost, rows are re-read.
struct SessionRestart: Error, CustomStringConvertible {
    var reason: String
    var description: String { "session restart: \(reason)" }
}

/// A graceful stop ran out of `drain-timeout`: the unacknowledged events stay unconfirmed
/// and are read again from the slot at the next start.
struct StopDeadlinePassed: Error, CustomStringConvertible {
    var unacknowledged: Int
    var description: String { "drain-timeout passed with \(unacknowledged) events unacknowledged" }
}
