import Foundation
import PGOutput
import PostgresClient
import RelayCore
import Synchronization
import Threading

/// Keeps the slot record (`outbox_relay_slot.confirmed_lsn`) ahead of every confirmation:
/// a capture mode confirms only what `recorded` says is already in the record, and hands
/// newer acknowledged LSNs to `offer`. So the slot is never confirmed past its record, and
/// a slot found ahead of the record at the next start was moved by someone else
/// (invariant 8).
///
/// The writes (one-row UPDATEs, each waiting for its WAL flush) run on a thread of their
/// own, so the capture thread never waits on them and commit→ack latency pays nothing.
/// Under load a write goes out at most every 100 ms, as often as confirmations, so a crash
/// or a takeover re-sends no more than before. Its WAL makes an idle server's WAL end move,
/// which an idle relay may confirm: to keep that loop from writing forever, small advances
/// wait up to ten status intervals. The commit stays synchronous on purpose: PostgreSQL
/// may fsync a slot's new position at once, so an unflushed record could fall behind it in
/// a crash and raise a false alarm.
final class ConfirmationRecorder: Sendable {
    private struct State {
        var recorded: LSN
        var offered: LSN
        var lastWrite = ContinuousClock.now - .seconds(3_600)  // a session's first advance goes out at once
        var urgent = false
        /// A wake-up is on its way to the writer (at most one per write).
        var signalled = false
        var stopped = false
        var failure: String?
        /// Callers of `recordNow` waiting for a write.
        var waiters = 0
    }

    private let store: SlotRecordStore
    private let connection: PGConnection
    private let idleInterval: Duration
    private let stopDeadline: @Sendable () -> ContinuousClock.Instant?
    private let teardownReserve: Duration
    private let state: Mutex<State>
    private let wake = DispatchSemaphore(value: 0)
    /// Signalled after every write while `recordNow` waits: notify mode waits for a record
    /// after each read that found rows, and a 5 ms polling sleep there was most of the
    /// time between two reads at a trickle.
    private let written = DispatchSemaphore(value: 0)
    /// The least time between two writes.
    static let minimumInterval: Duration = .milliseconds(100)
    /// Advances smaller than this may wait up to `idleInterval`.
    static let smallAdvanceBytes: UInt64 = 8 << 10

    /// How often `recordNow` looks for a stop while it waits.
    static let stopCheckInterval: Duration = .milliseconds(20)

    /// Connects (blocking) and starts the writer thread. `recorded` is an LSN known to be
    /// at or below the record (the slot's confirmed position at session start);
    /// `stopDeadline` is the delivery line's (nil until a stop is requested).
    init(configuration: RelayConfiguration, recorded: LSN, stopDeadline: @escaping @Sendable () -> ContinuousClock.Instant?) throws {
        self.stopDeadline = stopDeadline
        teardownReserve = configuration.stopTeardownReserve
        store = SlotRecordStore(slot: configuration.slotName)
        connection = try PGConnection.connectBlocking(configuration.databaseURL, applicationName: "\(configuration.applicationName)-slot-record")
        idleInterval = configuration.statusInterval * 10
        state = Mutex(State(recorded: recorded, offered: recorded))
        BlockingThread { [self] in writeLoop() }.start()
    }

    /// The highest LSN already in the record: confirm at most this.
    var recorded: LSN { state.withLock { $0.recorded } }

    /// `lsn` is acknowledged and may be recorded. Throws if the writer failed (the session
    /// must restart: without the record nothing more may be confirmed).
    func offer(_ lsn: LSN) throws {
        let now = ContinuousClock.now
        let (failure, wakeWriter): (String?, Bool) = state.withLock { state in
            if lsn > state.offered { state.offered = lsn }
            // Wake the writer only when a write is due, once per write: a wake-up per call
            // (per message burst) measurably cost commit→ack latency at 5,000 rows/s on 2
            // cores, and never waking it delayed confirmations (more re-sends after a crash).
            let due = state.offered.rawValue - state.recorded.rawValue >= Self.smallAdvanceBytes
                && now - state.lastWrite >= Self.minimumInterval
            guard due, !state.signalled else { return (state.failure, false) }
            state.signalled = true
            return (state.failure, true)
        }
        if let failure { throw SessionRestart(reason: "the slot record could not be written: \(failure)") }
        if wakeWriter { wake.signal() }
    }

    /// Records `lsn` now, waiting at most `longest`, and once `stopDeadline` returns a
    /// deadline no longer than `RecordWait` allows (a stop requested during the wait cuts
    /// it short); returns what is recorded then.
    func recordNow(_ lsn: LSN, longest: Duration) -> LSN {
        let limit = RecordWait(started: .now, longest: longest, teardownReserve: teardownReserve)
        state.withLock { state in
            if lsn > state.offered { state.offered = lsn }
            state.urgent = true
            state.waiters += 1
        }
        defer { state.withLock { $0.waiters -= 1 } }
        wake.signal()
        while true {
            // Registered as a waiter before this check: a write finishing after it signals.
            let (recorded, failed) = state.withLock { ($0.recorded, $0.failure != nil) }
            if recorded >= lsn || failed { return recorded }
            let left = limit.deadline(stopDeadline: stopDeadline()) - ContinuousClock.now
            guard left > .zero else { return recorded }
            // In slices: a stop is noticed within one, without a signal of its own.
            _ = written.wait(timeout: .now() + min(left, Self.stopCheckInterval).inSeconds)
        }
    }

    /// Ends the writer thread. Does not wait: a write in flight against an unresponsive
    /// server must not hold up a stop; the thread ends on its own and its connection closes.
    func stop() {
        state.withLock { $0.stopped = true }
        wake.signal()
    }

    private func writeLoop() {
        // Off for good once the database says the delivered-snapshot columns are missing
        // (migration 0008 not run yet): the record then only loses what a later
        // `slot reset` could spare, never a confirmation.
        var trackingDelivered = true
        while true {
            _ = wake.wait(timeout: .now() + .milliseconds(100))
            let now = ContinuousClock.now
            let (target, due, stopped) = state.withLock { state -> (LSN?, Bool, Bool) in
                state.signalled = false
                guard state.offered > state.recorded, state.failure == nil else { return (nil, false, state.stopped) }
                let since = now - state.lastWrite
                let large = state.offered.rawValue - state.recorded.rawValue >= Self.smallAdvanceBytes
                let due = state.urgent || (since >= Self.minimumInterval && (large || since >= idleInterval))
                return (state.offered, due, state.stopped)
            }
            if let target, due {
                do {
                    do {
                        try store.advance(to: target, trackingDelivered: trackingDelivered) { try connection.queryBlocking($0) }
                    } catch let error as PGError where trackingDelivered && error.sqlState == SlotDelivered.undefinedColumn {
                        trackingDelivered = false
                        try store.advance(to: target) { try connection.queryBlocking($0) }
                    }
                    state.withLock { state in
                        state.recorded = max(state.recorded, target)
                        state.lastWrite = now
                        if state.recorded >= state.offered { state.urgent = false }
                    }
                } catch {
                    state.withLock { $0.failure = "\(error)" }
                }
                // Wake every waiter; a signal left over makes a later wait return early, and
                // every waiter checks again.
                for _ in 0..<state.withLock({ $0.waiters }) { written.signal() }
            }
            if stopped { return }
        }
    }
}
