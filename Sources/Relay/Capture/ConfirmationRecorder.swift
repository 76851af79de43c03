import PGOutput
import PostgresClient

/// Keeps the slot record (`outbox_relay_slot.confirmed_lsn`) ahead of every confirmation:
/// a capture mode asks it how far it may confirm, and it records the LSN first when
/// needed. So the slot is never confirmed past its record, and a slot found ahead of the
/// record at the next start was moved by someone else (invariant 8).
///
/// Each record write is a one-row UPDATE. Under load it runs at most every 100 ms, as often
/// as confirmations go out, so a crash or a takeover re-sends no more than before. Its WAL
/// makes an idle server's WAL end move, which an idle relay may confirm: to keep that loop
/// from writing forever, small advances wait up to ten status intervals. Capture thread only.
final class ConfirmationRecorder {
    private let store: SlotRecordStore
    private let connection: PGConnection
    private let idleInterval: Duration
    /// The least time between two writes.
    static let minimumInterval: Duration = .milliseconds(100)
    private(set) var recorded: LSN
    /// Long ago: a session's first advance is recorded (and confirmed) at once, so a relay
    /// killed soon after it started does not re-send everything at its next start.
    private var lastWrite = ContinuousClock.now - .seconds(3_600)
    /// Advances smaller than this may wait up to `10 × interval`.
    static let smallAdvanceBytes: UInt64 = 8 << 10

    init(configuration: RelayConfiguration, recorded: LSN) throws {
        store = SlotRecordStore(slot: configuration.slotName)
        connection = try PGConnection.connectBlocking(configuration.databaseURL, applicationName: "\(configuration.applicationName)-slot-record")
        idleInterval = configuration.statusInterval * 10
        self.recorded = recorded
    }

    /// How far the slot may be confirmed now, given that `target` is acknowledged:
    /// `target` once recorded, else the recorded LSN. `force` records at once (a stop).
    func confirmable(_ target: LSN, force: Bool) throws -> LSN {
        guard target > recorded else { return target }
        let now = ContinuousClock.now
        let since = now - lastWrite
        let large = target.rawValue - recorded.rawValue >= Self.smallAdvanceBytes
        guard force || (since >= Self.minimumInterval && (large || since >= idleInterval)) else { return recorded }
        try store.advance(to: target) { try connection.queryBlocking($0) }
        recorded = target
        lastWrite = now
        return target
    }
}
