public import PGOutput

/// The relay's delivery core, pure: which events may be handed to Kafka (the in-flight
/// window), which LSN may be confirmed (the LSN tracker), and what a failure, a stop or a
/// pause means. The I/O shell feeds it inputs under one lock and carries out the actions
/// it returns after releasing the lock, so every rule here is tested without servers.
///
/// Inputs: reserve, begin/commit, acknowledge, failed, requestRestart, requestStop, reset.
/// Invariants it keeps:
/// - a confirmable LSN covers only transactions whose every event was acknowledged
///   (delivered, or durably dead-lettered) — `LSNTracker`;
/// - only a row's own fault dead-letters it; an operator's problem pauses the line and
///   restarts the session with backoff, so nothing is marked DEAD for it — `DeliveryFault`;
/// - a stop has a deadline: after it, nothing waits any more (`abandon`, `timedOut`), and
///   whatever is unacknowledged stays unconfirmed, to be read again from the slot.
public struct DeliveryStateMachine: Sendable {
    public typealias Token = LSNTracker.Token

    public private(set) var tracker: LSNTracker
    private var window: InFlightWindow
    /// Set when the session must start over from the slot; cleared by `reset`.
    public private(set) var restartReason: String?
    /// The pending restart is the pause's: its cause and fix were reported with the pause,
    /// so the restart itself is routine (one fault, one error line).
    public private(set) var restartIsPause = false
    /// Set by an operator problem; survives session restarts and is cleared by the first
    /// successful delivery after it (the operator fixed it).
    public private(set) var pause: Pause?
    public private(set) var stopDeadline: ContinuousClock.Instant?

    public struct Pause: Sendable, Equatable {
        public var topic: String
        public var problem: OperatorProblem
        /// librdkafka's message, for the log.
        public var detail: String
        public init(topic: String, problem: OperatorProblem, detail: String) {
            self.topic = topic; self.problem = problem; self.detail = detail
        }
        public var fix: String { problem.fix(topic: topic) }
    }

    public init(maxEvents: Int, maxBytes: Int, confirmed: LSN = .invalid) {
        tracker = LSNTracker(confirmed: confirmed)
        window = InFlightWindow(maxEvents: maxEvents, maxBytes: maxBytes)
    }

    public var confirmableLSN: LSN { tracker.confirmableLSN }
    public var inFlightEvents: Int { tracker.inFlightEvents }
    public var isStopping: Bool { stopDeadline != nil }

    // MARK: session

    /// A new session reads from the slot's confirmed position: whatever the previous one
    /// had in flight no longer counts, and its late reports are ignored.
    public mutating func reset(confirmed: LSN) {
        tracker.reset(confirmed: confirmed)
        window = InFlightWindow(maxEvents: window.maxEvents, maxBytes: window.maxBytes)
        restartReason = nil
        restartIsPause = false
    }

    public mutating func requestRestart(_ reason: String) {
        if restartReason == nil { restartReason = reason }
    }

    // MARK: capture

    public mutating func beginTransaction(commitTime: Int64) {
        tracker.beginTransaction(commitTime: commitTime)
    }

    /// Returns true when the confirmable LSN moved.
    public mutating func commitTransaction(endLSN: LSN) -> Bool {
        tracker.commitTransaction(endLSN: endLSN)
    }

    public mutating func observeServerWALEnd(_ lsn: LSN) -> Bool {
        tracker.observeServerWALEnd(lsn)
    }

    public enum ReserveAction: Sendable, Equatable {
        /// Produce the event with this token.
        case publish(Token)
        /// The window is full: wait for acknowledgements, then ask again.
        case wait
        /// The session must start over (a failure or a pause); stop reading.
        case restartSession(String)
        /// A stop's deadline passed: give up on the rest; nothing more is confirmed.
        case abandon
    }

    /// Takes a place in the window for an event of `bytes`, when there is room.
    public mutating func reserve(bytes: Int, now: ContinuousClock.Instant) -> ReserveAction {
        if let restartReason { return .restartSession(restartReason) }
        if let stopDeadline, now >= stopDeadline { return .abandon }
        guard window.tryAcquire(bytes: bytes) else { return .wait }
        return .publish(tracker.registerEvent())
    }

    // MARK: outcomes

    public struct AckEffects: Sendable, Equatable {
        /// Acknowledgements that counted (not late reports of an earlier session).
        public var accepted = 0
        /// Commit times of the delivered events' transactions, for the latency metric.
        public var commitTimes: [Int64] = []
        /// The pause this delivery ended, if any.
        public var resumed: Pause?
        public var confirmableMoved = false
        public init() {}
    }

    /// Events are done: delivered (`published`), or durably dead-lettered.
    public mutating func acknowledge<S: Sequence>(_ events: S, published: Bool) -> AckEffects where S.Element == (token: Token, size: Int) {
        var effects = AckEffects()
        for (token, size) in events {
            let commitTime = tracker.commitTime(of: token)
            let ignoredBefore = tracker.ignoredAcks
            if tracker.acknowledge(token) { effects.confirmableMoved = true }
            guard tracker.ignoredAcks == ignoredBefore else { continue }
            window.release(bytes: size)
            effects.accepted += 1
            if published, let commitTime, commitTime > 0 { effects.commitTimes.append(commitTime) }
        }
        if published, effects.accepted > 0, let pause {
            effects.resumed = pause
            self.pause = nil
        }
        return effects
    }

    public enum FailureAction: Sendable, Equatable {
        /// Our own purge: nothing to do, the session restart re-reads the row.
        case ignore
        /// The row's own fault: copy it to the dead-letter topic and mark it DEAD, then
        /// `acknowledge(..., published: false)`.
        case deadLetter(DeadLetterReason)
        /// An operator's problem: report it loudly when `firstReport` (a line already paused
        /// for the same problem on the same topic keeps failing at each retry, and says it
        /// once); the session restarts with backoff.
        case pause(Pause, firstReport: Bool)
        /// Anything else: the session restarts from the slot.
        case restartSession(String)
    }

    /// A produce call or a delivery report failed for the event `token` bound for `topic`.
    public mutating func failed(topic: String, errorName: String, message: String,
                                stage: DeliveryFault.Stage) -> FailureAction {
        switch DeliveryFault.classify(errorName: errorName, stage: stage) {
        case .purged:
            return .ignore
        case .row(let reason):
            return .deadLetter(reason)
        case .operatorError(let problem):
            let pause = Pause(topic: topic, problem: problem, detail: message)
            let known = self.pause.map { $0.topic == topic && $0.problem == problem } ?? false
            self.pause = pause
            if restartReason == nil { restartIsPause = true }
            requestRestart("publishing paused: \(problem) on topic \(topic)")
            return .pause(pause, firstReport: !known)
        case .session:
            let reason = "delivery failed with \(errorName): \(message)"
            requestRestart(reason)
            return .restartSession(reason)
        }
    }

    // MARK: stop

    /// A graceful stop: capture ends at a transaction boundary, deliveries may be waited
    /// for until `deadline`, never after. A second request keeps the earlier deadline.
    public mutating func requestStop(deadline: ContinuousClock.Instant) {
        stopDeadline = min(stopDeadline ?? deadline, deadline)
    }

    public enum DrainState: Sendable, Equatable {
        case drained
        case waiting
        /// The deadline passed with events unacknowledged: they stay unconfirmed and are
        /// read again from the slot at the next start.
        case timedOut(unacknowledged: Int)
    }

    /// Whether a drain (waiting for every in-flight event) is done, may go on, or must end.
    public func drainState(now: ContinuousClock.Instant, deadline: ContinuousClock.Instant) -> DrainState {
        if tracker.inFlightEvents == 0 { return .drained }
        let limit = min(deadline, stopDeadline ?? deadline)
        return now >= limit ? .timedOut(unacknowledged: tracker.inFlightEvents) : .waiting
    }
}
