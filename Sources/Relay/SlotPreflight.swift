import PGOutput
import PostgresClient

/// Checks (and, when allowed, creates) what stream and notify capture need before reading
/// the slot: logical WAL, the publication and the slot itself. Every failure is a
/// `RelayError` that names the problem and the fix.
struct SlotPreflight {
    let slot: String
    let publication: String
    let createIfMissing: Bool

    /// What the relay knows about the slot after the checks.
    struct SlotState: Equatable {
        var confirmedFlush: LSN
        var activePID: Int32?
        var created: Bool
    }

    /// Runs the checks through `execute` (a replication or ordinary connection).
    /// `lastConfirmed` is what this process last confirmed to the slot, nil on first start;
    /// a slot that is missing or ahead of it means someone else dropped or advanced it.
    func run(lastConfirmed: LSN?, execute: (String) throws -> PGResult,
             createSlot: () throws -> Void) throws -> SlotState {
        let walLevel = try execute("SHOW wal_level").single().string("wal_level")
        guard walLevel == "logical" else {
            throw RelayError(.walLevelNotLogical,
                             "PostgreSQL has wal_level = \(walLevel), so logical decoding is unavailable.",
                             fix: "set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL.")
        }
        try checkPublication(execute)
        let rows = try execute("""
            SELECT plugin, slot_type, database, wal_status, confirmed_flush_lsn::text AS confirmed,
                   active_pid, current_database() AS here
            FROM pg_replication_slots WHERE slot_name = \(quoteLiteral(slot))
            """).rows
        guard let row = rows.first else {
            if let lastConfirmed {
                throw RelayError(.slotMissing,
                                 "Replication slot \"\(slot)\" disappeared while the relay was using it (last confirmed \(lastConfirmed)). Recreating it would silently skip every row committed in between, so the relay stops.",
                                 fix: "find out who dropped the slot; to start over deliberately, restart the relay (it creates a new slot), then re-drive rows still INIT with the sweeper.")
            }
            guard createIfMissing else {
                throw RelayError(.slotMissing, "Replication slot \"\(slot)\" does not exist.",
                                 fix: "create it with SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput'), or allow the relay to create it (--create-slot true).")
            }
            try createSlot()
            let confirmed = try execute("SELECT confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = \(quoteLiteral(slot))")
                .single().lsn("confirmed")
            return SlotState(confirmedFlush: confirmed, activePID: nil, created: true)
        }
        let plugin = try row.string("plugin"), type = try row.string("slot_type")
        guard type == "logical", plugin == "pgoutput" else {
            throw RelayError(.slotMisconfigured,
                             "Replication slot \"\(slot)\" is a \(type) slot using plugin \"\(plugin)\", but the relay needs a logical slot with pgoutput.",
                             fix: "choose another slot name (--slot), or drop this slot if nothing else uses it.")
        }
        let database = try row.optionalString("database"), here = try row.string("here")
        guard database == here else {
            throw RelayError(.slotMisconfigured,
                             "Replication slot \"\(slot)\" belongs to database \"\(database ?? "?")\", not \"\(here)\".",
                             fix: "point the relay at database \"\(database ?? "?")\" or use another slot name.")
        }
        if try row.optionalString("wal_status") == "lost" {
            throw RelayError(.slotInvalidated,
                             "Replication slot \"\(slot)\" was invalidated by PostgreSQL (wal_status = lost): WAL it still needed was removed, typically because max_slot_wal_keep_size was exceeded.",
                             fix: "drop and recreate the slot, then let the sweeper re-send rows still INIT; raise max_slot_wal_keep_size or fix the relay outage that let lag grow.")
        }
        let confirmed = try row.optionalLSN("confirmed") ?? .invalid
        if let lastConfirmed, confirmed > lastConfirmed {
            throw RelayError(.slotMovedAhead,
                             "Replication slot \"\(slot)\" is confirmed at \(confirmed), ahead of the \(lastConfirmed) this relay confirmed: someone advanced or recreated it, and rows in between may never be published.",
                             fix: "find who moved the slot; re-drive rows still INIT with the sweeper; restart the relay to accept the new position.")
        }
        let active = try row.optionalString("active_pid").flatMap { Int32($0) }
        return SlotState(confirmedFlush: confirmed, activePID: active, created: false)
    }

    private func checkPublication(_ execute: (String) throws -> PGResult) throws {
        let rows = try execute("""
            SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = \(quoteLiteral(publication))
            """).rows
        guard let row = rows.first else {
            if createIfMissing {
                // Needs ownership of the outbox table; the least-privilege relay role lacks
                // it, which is why migrations create the publication up front.
                _ = try execute("CREATE PUBLICATION \(quoteIdentifier(publication)) FOR TABLE outbox WITH (publish = 'insert')")
                return
            }
            throw RelayError(.publicationMisconfigured, "Publication \"\(publication)\" does not exist.",
                             fix: "run `outbox-relay migrate` (it creates \(publication) for the outbox table), or CREATE PUBLICATION \(publication) FOR TABLE outbox WITH (publish = 'insert').")
        }
        guard try row.bool("pubinsert") else {
            throw RelayError(.publicationMisconfigured, "Publication \"\(publication)\" does not publish inserts.",
                             fix: "ALTER PUBLICATION \(publication) SET (publish = 'insert').")
        }
    }
}
