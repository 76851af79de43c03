public import PostgresClient
public import RelayCore

/// PostgreSQL 17+ failover slots (ARCHITECTURE invariant 9): the relay's slot is created
/// with `failover`, so that standbys with `sync_replication_slots = on` keep a copy that the
/// relay continues from after a promotion. These are the SQL and replication commands, and
/// the reading of what decides whether a failover is safe (`FailoverReadiness`).
public enum FailoverSlot {
    /// The server's major version (`server_version_num` 180006 gives 18).
    static func serverMajor(_ execute: (String) throws -> PGResult) throws -> Int {
        let number = try execute("SELECT current_setting('server_version_num')::int4 AS v").single().int("v")
        return number / 10_000
    }

    static func supported(serverMajor: Int) -> Bool { serverMajor >= FailoverReadiness.firstServerMajor }

    /// CREATE_REPLICATION_SLOT with an exported snapshot (stream mode's first start and
    /// `slot reset`). The option list form exists since 15; FAILOVER since 17.
    static func createReplicationCommand(slot: String, failover: Bool) -> String {
        "CREATE_REPLICATION_SLOT \(quoteIdentifier(slot)) LOGICAL pgoutput (SNAPSHOT 'export'\(failover ? ", FAILOVER true" : ""))"
    }

    /// The SQL form (notify mode's first start): the fifth argument, failover, exists since 17.
    static func createFunctionCall(slot: String, failover: Bool) -> String {
        failover
            ? "SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot(\(quoteLiteral(slot)), 'pgoutput', false, false, true)"
            : "SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot(\(quoteLiteral(slot)), 'pgoutput')"
    }

    /// What happened when the relay tried to turn failover on for its existing slot.
    enum Enabling: Equatable {
        case notNeeded
        case enabled
        /// It could not; the text says why and what to do.
        case notPossible(String)
    }

    /// Turns failover on for a slot that lacks it, on a replication connection (there is no
    /// SQL function for it). Safe only while no walsender holds the slot, and PostgreSQL
    /// refuses otherwise (55006): during a rolling deploy an older relay may still stream
    /// it. Then the relay goes on, and tries again at its next session start.
    static func enable(slot: String, replicationCommands: Bool, execute: (String) throws -> PGResult) -> Enabling {
        let command = "ALTER_REPLICATION_SLOT \(quoteIdentifier(slot)) (FAILOVER true)"
        guard replicationCommands else {
            return .notPossible("notify capture has no replication connection to run ALTER_REPLICATION_SLOT; run it once as a role with REPLICATION: psql \"dbname=<db> replication=database\" -c '\(command)'")
        }
        do {
            _ = try execute(command)
            return .enabled
        } catch let error as PGError where error.sqlState == PGError.State.objectInUse {
            return .notPossible("another process holds the slot (\(error.message)); the relay tries again at its next session start")
        } catch {
            return .notPossible("\(error); run `\(command)` on a replication connection")
        }
    }

    /// Reads what decides `FailoverReadiness` for `slot` (absent: not a failover slot).
    public static func assess(slot: String, execute: (String) throws -> PGResult) throws -> FailoverReadiness {
        let major = try serverMajor(execute)
        guard supported(serverMajor: major) else {
            return FailoverReadiness.assess(serverMajor: major, slotFailover: false, synchronizedStandbySlots: "", physicalSlots: [])
        }
        let failover = try execute("SELECT failover FROM pg_replication_slots WHERE slot_name = \(quoteLiteral(slot))")
            .rows.first.map { try $0.bool("failover") } ?? false
        let setting = try execute("SHOW synchronized_standby_slots").single().string("synchronized_standby_slots")
        let physical = try execute("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical'")
            .rows.map { try $0.string("slot_name") }
        return FailoverReadiness.assess(serverMajor: major, slotFailover: failover, synchronizedStandbySlots: setting,
                                        physicalSlots: physical)
    }
}

extension FailoverReadiness {
    /// One line for `status` and the startup warning: what holds, and the fix when it matters.
    public var summary: String {
        switch self {
        case .ready(let slots):
            return "ready: a failover slot, and synchronized_standby_slots names every standby's slot (\(slots.joined(separator: ", ")))"
        case .unsupported(let major):
            return "not possible on PostgreSQL \(major) (failover slots need 17+): after a failover run `outbox-relay slot reset` on the new primary"
        case .slotWithoutFailover:
            return "not ready: the slot is not a failover slot, so standbys do not keep a copy of it; fix: stream mode turns failover on at its next session start while no other process holds the slot"
        case .noStandby:
            return "no standby: this primary has no physical replication slot, so no standby keeps a copy of the slot"
        case .unprotected(let slots):
            let list = slots.joined(separator: ", ")
            return "not ready: synchronized_standby_slots does not name the physical slot of standby \(list), so the relay may publish transactions that standby never received, and its copy of the slot lags; fix: on the primary, add \(list) to synchronized_standby_slots (ALTER SYSTEM SET synchronized_standby_slots = '<every standby's slot>'; SELECT pg_reload_conf())"
        }
    }
}
