import Logging
import PGOutput
import PostgresClient
import RelayCore

/// Gives each capture session its `AcknowledgedHorizon` (invariant 10): the slot record's
/// position, and what this process acknowledged in its earlier sessions, which it carries
/// from one session to the next. So a PostgreSQL crash re-sends at most what was
/// acknowledged after the record's last write, and a reconnect (walsender terminated, a
/// network blip) at most what was still in flight. One per capture mode, used by its
/// capture thread only.
final class SessionHorizons {
    private let slot: String
    private let logger: Logger
    /// What this process knows was acknowledged (the last session's horizon), on the WAL
    /// history of the server that session read from: what the delivery line acknowledged
    /// since belongs to that history too. nil before the first session.
    private var known: AcknowledgedHorizon.InProcess?

    init(slot: String, logger: Logger) {
        self.slot = slot
        self.logger = logger
    }

    /// Call once the slot passed its checks, before the delivery line is reset for the new
    /// session: `acknowledgedByLine` is then still what the previous session acknowledged
    /// (late delivery reports included). `slotConfirmed` is where PostgreSQL resumes.
    func start(slotConfirmed: LSN, acknowledgedByLine: LSN, execute: (String) throws -> PGResult) throws -> AcknowledgedHorizon {
        let recorded = try SlotRecordStore(slot: slot).read(execute)
        let history = Self.readHistory(execute)
        let horizon = AcknowledgedHorizon(slot: slotConfirmed, recorded: recorded,
                                          inProcess: known?.raised(byLine: acknowledgedByLine), history: history)
        known = horizon.known(on: history)
        if horizon.lsn > slotConfirmed {
            logger.notice("the slot resumes behind what was already acknowledged; transactions committed below the acknowledged position are skipped, not published again",
                          metadata: ["slot": "\(slot)", "slot_confirmed": "\(slotConfirmed)", "acknowledged": "\(horizon.lsn)",
                                     "recorded": "\(recorded.map(\.description) ?? "none")"])
        }
        return horizon
    }

    /// The server's system identifier and current timeline (the first 8 hex digits of the
    /// current WAL file's name); nil when they cannot be read (on a standby, say), which
    /// only means this process's own acknowledgements are not used for skipping.
    static func readHistory(_ execute: (String) throws -> PGResult) -> AcknowledgedHorizon.WALHistory? {
        guard let row = try? execute("""
                SELECT system_identifier::text AS system, pg_walfile_name(pg_current_wal_lsn()) AS walfile FROM pg_control_system()
                """).single(),
              let system = try? row.string("system"), let walfile = try? row.string("walfile"),
              walfile.count == 24, let timeline = UInt32(walfile.prefix(8), radix: 16)
        else { return nil }
        return AcknowledgedHorizon.WALHistory(systemIdentifier: system, timeline: timeline)
    }
}
