import Logging
import PGOutput
import RelayCore
import PostgresClient

/// Checks (and, when allowed, creates) what stream and notify capture need before reading
/// the slot: logical WAL, the publication and the slot itself. Every failure is a
/// `RelayError` that names the problem and the fix.
struct SlotPreflight {
    let slot: String
    let publication: String
    /// The outbox tables the publication must carry (`outbox-tables`).
    var tables: [OutboxTable] = [.default]
    let createIfMissing: Bool
    /// Sharded capture: the publication must come from `migrate --shards N` (it carries the
    /// shard's row filter), so it is never created here.
    var shard: ShardSpec? = nil
    /// `execute` runs replication commands too (stream mode), so the relay can turn
    /// failover on for its slot (PostgreSQL 17+).
    var replicationCommands = false

    /// What the relay knows about the slot after the checks.
    struct SlotState: Equatable {
        var confirmedFlush: LSN
        var activePID: Int32?
        var created: Bool
        /// Whether the slot survives a primary failover; for the startup warning and metric.
        var failover: FailoverReadiness = .noStandby
        /// Why failover could not be turned on for the existing slot, when it could not.
        var failoverNotEnabled: String?
    }

    /// Runs the checks through `execute` (a replication or ordinary connection). The slot
    /// must match its record in `outbox_relay_slot` (`SlotIdentityCheck`): a slot that is
    /// missing, or confirmed past what any relay recorded, stops the relay with the fix.
    /// `createSlot` creates it (as a failover slot when its argument is true: PostgreSQL
    /// 17+) and returns its confirmed LSN; it runs on the very first start only (no slot,
    /// no record), and is then recorded by the caller.
    func run(execute: (String) throws -> PGResult, createSlot: (_ failover: Bool) throws -> LSN) throws -> SlotState {
        var state = try checkIdentity(execute: execute, createSlot: createSlot)
        guard state.activePID == nil else { return state }  // a standby relay: the active one reports
        if !state.created, try slotLacksFailover(execute),
           case .notPossible(let why) = FailoverSlot.enable(slot: slot, replicationCommands: replicationCommands, execute: execute) {
            state.failoverNotEnabled = why
        }
        state.failover = try FailoverSlot.assess(slot: slot, execute: execute)
        return state
    }

    /// On 17+, whether the slot is not (yet) a failover slot.
    private func slotLacksFailover(_ execute: (String) throws -> PGResult) throws -> Bool {
        guard FailoverSlot.supported(serverMajor: try FailoverSlot.serverMajor(execute)) else { return false }
        return try execute("SELECT failover FROM pg_replication_slots WHERE slot_name = \(quoteLiteral(slot))")
            .rows.first.map { try !$0.bool("failover") } ?? false
    }

    private func checkIdentity(execute: (String) throws -> PGResult, createSlot: (_ failover: Bool) throws -> LSN) throws -> SlotState {
        let walLevel = try execute("SHOW wal_level").single().string("wal_level")
        guard walLevel == "logical" else {
            throw RelayError(.walLevelNotLogical,
                             "PostgreSQL has wal_level = \(walLevel), so logical decoding is unavailable.",
                             fix: "set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL.")
        }
        try checkPublication(execute)
        let store = SlotRecordStore(slot: slot)
        let major = try FailoverSlot.serverMajor(execute)
        // failover, synced and invalidation_reason exist since 17.
        let columns17 = FailoverSlot.supported(serverMajor: major)
            ? "synced AND NOT pg_is_in_recovery() AS synced, invalidation_reason"
            : "false AS synced, NULL::text AS invalidation_reason"
        // The slot first, the record second: relays record an LSN before they confirm it,
        // so a record read after the slot is at least what that slot read showed, even
        // while a peer is confirming right now. The other order raced (a false alarm).
        let rows = try execute("""
            SELECT plugin, slot_type, database, wal_status, confirmed_flush_lsn::text AS confirmed,
                   active_pid, current_database() AS here, \(columns17)
            FROM pg_replication_slots WHERE slot_name = \(quoteLiteral(slot))
            """).rows
        var recorded = try store.read(execute)
        var confirmed: LSN?
        var active: Int32?
        var synced = false
        if let row = rows.first {
            try checkSlot(row)
            confirmed = try row.optionalLSN("confirmed") ?? .invalid
            active = try row.optionalString("active_pid").flatMap { Int32($0) }
            synced = try row.bool("synced")
        }
        var holdsFirstStartLock = false, interrupted = false
        if try store.isCreating(execute) == true {
            // A first start began: a peer is publishing the rows committed before its new slot
            // (the slot is not active meanwhile), or it died doing so. Streaming that slot now
            // would publish newer rows before older ones of the same key, or skip the older.
            guard try tryFirstStartLock(execute) else { throw Self.firstStartInProgress(slot) }
            holdsFirstStartLock = true
            // Its relay died: nothing was streamed from that slot yet. Start over (the
            // "creating" record stays: it is this first start's too).
            if rows.first != nil {
                _ = try execute("SELECT pg_drop_replication_slot(\(quoteLiteral(slot)))")
                confirmed = nil
            }
            recorded = nil
            interrupted = true
        }
        switch SlotIdentityCheck.decide(slot: confirmed, synced: synced, recorded: recorded, createIfMissing: createIfMissing) {
        case .create:
            // The record says "creating" from before the slot exists until the caller's
            // `recordCreated`, once the rows committed before the slot are published; the
            // session lock tells a live first start from an interrupted one.
            if !holdsFirstStartLock {
                guard try tryFirstStartLock(execute) else { throw Self.firstStartInProgress(slot) }
            }
            guard try interrupted || store.beginCreating(execute) else {
                _ = try execute("SELECT pg_advisory_unlock(\(Self.firstStartLockKey(slot)))")
                throw Self.firstStartInProgress(slot)  // a peer finished one a moment ago: start normally at the next poll
            }
            let lsn = try createSlot(FailoverSlot.supported(serverMajor: major))
            return SlotState(confirmedFlush: lsn, activePID: nil, created: true)
        case .adopt(let lsn):
            try store.record(createdAt: lsn, change: "adopted", replace: false, execute)
            return SlotState(confirmedFlush: lsn, activePID: active, created: false)
        case .proceed(let lsn):
            return SlotState(confirmedFlush: lsn, activePID: active, created: false)
        case .followSynced(let lsn):
            // The record's last write before the failover did not reach this server: raise it.
            try store.advance(to: lsn, execute)
            return SlotState(confirmedFlush: lsn, activePID: active, created: false)
        case .refuse(.missingNeverCreated):
            throw RelayError(.slotMissing, "Replication slot \"\(slot)\" does not exist.",
                             fix: "create it with `outbox-relay slot reset --slot \(slot)`, or allow the relay to create it on its very first start (--create-slot, the default).")
        case .refuse(.lost(let recorded)):
            throw Self.lostSlot(slot, recorded: recorded,
                                cause: LostSlotCause.assess(timeline: try Self.timeline(execute), serverMajor: major))
        case .refuse(.movedAhead(let at, let recorded)):
            throw RelayError(.slotMovedAhead,
                             "Replication slot \"\(slot)\" is confirmed at \(at), ahead of \(recorded), the furthest any relay recorded confirming (table outbox_relay_slot): someone advanced or recreated it, and rows in between may never be published.",
                             fix: Self.resetFix(slot))
        }
    }

    /// Records a slot this relay created, once its first start is complete, and lets peers
    /// go on (they stream it from here).
    func recordCreated(at lsn: LSN, execute: (String) throws -> PGResult) throws {
        try SlotRecordStore(slot: slot).finishCreating(at: lsn, execute)
        _ = try execute("SELECT pg_advisory_unlock(\(Self.firstStartLockKey(slot)))")
    }

    /// A session advisory lock held by the relay doing a slot's first start, from before it
    /// creates the slot until `recordCreated`: its connection's end (a crash) releases it.
    /// Not the notify mode's reader lock (another key derivation).
    static func firstStartLockKey(_ slot: String) -> Int64 {
        Int64(truncatingIfNeeded: ("first-start:" + slot).utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 })
    }

    private func tryFirstStartLock(_ execute: (String) throws -> PGResult) throws -> Bool {
        try execute("SELECT pg_try_advisory_lock(\(Self.firstStartLockKey(slot))) AS got").single().bool("got")
    }

    static func firstStartInProgress(_ slot: String) -> RelayError {
        RelayError(.slotInUse, "Replication slot \"\(slot)\" is being created by another relay (its first start publishes the rows committed before it); waiting as a standby.",
                   fix: "nothing: this relay streams or takes over once that first start is done.", halting: false)
    }

    /// The server's current timeline, from the name of the WAL file it writes (plain SQL, so
    /// notify mode's ordinary connection can read it too).
    static func timeline(_ execute: (String) throws -> PGResult) throws -> UInt32 {
        let name = try execute("SELECT pg_walfile_name(pg_current_wal_lsn()) AS f").single().string("f")
        return UInt32(name.prefix(8), radix: 16) ?? 1
    }

    static func lostSlot(_ slot: String, recorded: LSN, cause: LostSlotCause) -> RelayError {
        let skip = "Recreating it would silently skip every row committed since, so the relay does not start."
        switch cause {
        case .dropped:
            return RelayError(.slotMissing,
                              "Replication slot \"\(slot)\" is missing, but relays confirmed it up to \(recorded) (table outbox_relay_slot): it disappeared, dropped by someone. \(skip)",
                              fix: resetFix(slot))
        case .promotedOrRestored(let timeline, let failoverSlots):
            // A timeline above 1 says a promotion or restore happened, not when: "most likely".
            let why = failoverSlots
                ? "it was not a failover slot, or the standby had not synced it yet (`outbox-relay status` says whether a slot is ready for the next failover)"
                : "PostgreSQL before 17 keeps no logical slot through a promotion"
            return RelayError(.slotMissing,
                              "Replication slot \"\(slot)\" is missing on this server, which is on timeline \(timeline): it was promoted from a standby (a failover or switchover) or restored from a backup, which most likely lost the slot that relays confirmed up to \(recorded) (table outbox_relay_slot): \(why). \(skip)",
                              fix: "with every relay of the slot stopped, run `outbox-relay slot reset --slot \(slot)` against this server (the new primary): it recreates the slot and re-sends, in commit order, every outbox row still INIT; then start the relays again. Consumers absorb the duplicates.")
        }
    }

    static func resetFix(_ slot: String) -> String {
        "find out who dropped or moved the slot; then run `outbox-relay slot reset --slot \(slot)`, which recreates it and re-sends, in commit order, every outbox row still INIT, and start the relay again."
    }

    private func checkSlot(_ row: PGRow) throws {
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
        // 17+ names the cause (invalidation_reason); before, wal_status = lost is the sign.
        let reason = try row.optionalString("invalidation_reason"), walStatus = try row.optionalString("wal_status")
        if reason != nil || walStatus == "lost" {
            let (cause, prevent) = Self.invalidationCause(reason)
            throw RelayError(.slotInvalidated,
                             "Replication slot \"\(slot)\" was invalidated by PostgreSQL (wal_status = \(walStatus ?? "-")\(reason.map { ", invalidation_reason = \($0)" } ?? "")): \(cause).",
                             fix: "run `outbox-relay slot reset --slot \(slot)` (it recreates the slot and re-sends every row still INIT, in order); \(prevent).")
        }
    }

    /// What an invalidation reason means, and how to keep it from happening again.
    static func invalidationCause(_ reason: String?) -> (cause: String, prevent: String) {
        switch reason {
        case "idle_timeout":
            // PostgreSQL 18: a slot no walsender used for idle_replication_slot_timeout.
            return ("no relay read it for longer than idle_replication_slot_timeout (PostgreSQL 18+)",
                    "set idle_replication_slot_timeout = 0 (the default) or longer than the longest relay outage you accept")
        case "rows_removed":
            return ("rows it still needed were removed by VACUUM on the primary (a slot on a standby without hot_standby_feedback)",
                    "turn on hot_standby_feedback and use a physical slot for the standby")
        case "wal_level_insufficient":
            return ("wal_level was lowered below logical", "keep wal_level = logical")
        default:  // wal_removed, or a server before 17
            return ("WAL it still needed was removed, typically because max_slot_wal_keep_size was exceeded",
                    "raise max_slot_wal_keep_size or fix the relay outage that let lag grow")
        }
    }

    private func checkPublication(_ execute: (String) throws -> PGResult) throws {
        if let shard { return try checkShardPublication(shard, execute) }
        try refuseIfSharded(execute)
        let rows = try execute("""
            SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = \(quoteLiteral(publication))
            """).rows
        guard let row = rows.first else {
            if createIfMissing {
                // Needs ownership of the outbox tables; the least-privilege relay role lacks
                // it, which is why migrations create the publication up front.
                _ = try execute("CREATE PUBLICATION \(quoteIdentifier(publication)) FOR TABLE \(tables.map(\.sql).joined(separator: ", ")) WITH (publish = 'insert')")
                return
            }
            throw RelayError(.publicationMisconfigured, "Publication \"\(publication)\" does not exist.",
                             fix: "run `outbox-relay migrate` (it creates \(publication) for the outbox table), or CREATE PUBLICATION \(publication) FOR TABLE \(tables.map(\.qualifiedName).joined(separator: ", ")) WITH (publish = 'insert').")
        }
        guard try row.bool("pubinsert") else {
            throw RelayError(.publicationMisconfigured, "Publication \"\(publication)\" does not publish inserts.",
                             fix: "ALTER PUBLICATION \(publication) SET (publish = 'insert').")
        }
        try checkTablesPublished(execute)
    }

    /// Every configured table is in the publication: a table missing from it would be
    /// captured by nobody, silently. Not added here: its rows written before an ALTER
    /// PUBLICATION would never reach the slot, so adding it is `migrate --schema`'s job,
    /// in the transaction that creates the table.
    fileprivate func checkTablesPublished(_ execute: (String) throws -> PGResult) throws {
        let published = Set(try execute("""
            SELECT schemaname || '.' || tablename AS name FROM pg_publication_tables WHERE pubname = \(quoteLiteral(publication))
            """).rows.map { try $0.string("name") })
        let missing = tables.filter { !published.contains($0.qualifiedName) }
        guard let first = missing.first else { return }
        let names = missing.map(\.qualifiedName).joined(separator: ", ")
        throw RelayError(.publicationMisconfigured,
                         "Publication \"\(publication)\" does not publish \(names), named in outbox-tables: its rows would reach no relay.",
                         fix: "run `outbox-relay migrate --schema \(first.schema)` for each (it installs the table and adds it to the publication), or remove it from outbox-tables.")
    }
}

extension SlotPreflight {
    /// The shard's publication exists and filters rows (made by `migrate --shards N`). A
    /// relay started with a stale `--shard I/N` after a reshard finds none and stops: it
    /// would read another layout's rows.
    fileprivate func checkShardPublication(_ shard: ShardSpec, _ execute: (String) throws -> PGResult) throws {
        let rows = try execute("""
            SELECT p.pubinsert, t.schemaname || '.' || t.tablename AS name, t.rowfilter FROM pg_publication p
            LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname
            WHERE p.pubname = \(quoteLiteral(publication))
            """).rows
        guard let first = rows.first else {
            throw RelayError(.publicationMisconfigured,
                             "Publication \"\(publication)\" of shard \(shard) does not exist: the database is not split into \(shard.count) shards.",
                             fix: "run `outbox-relay migrate --shards \(shard.count)` (add --reshard when it currently has another shard count, after stopping every relay), or start this relay with the --shard I/N that matches the database's shard count (`outbox-relay status` lists the shards).")
        }
        let filters = Dictionary(try rows.compactMap { row in try row.optionalString("name").map { ($0, try row.optionalString("rowfilter")) } },
                                 uniquingKeysWith: { a, _ in a })
        for table in tables {
            guard try first.bool("pubinsert"), let filter = filters[table.qualifiedName], filter?.contains("hashtext") == true else {
                throw RelayError(.publicationMisconfigured,
                                 "Publication \"\(publication)\" of shard \(shard) does not publish \(table) inserts filtered by the shard's key hash.",
                                 fix: "run `outbox-relay migrate --shards \(shard.count)` with outbox-tables naming every outbox table (it creates each shard's publication with the row filter), after `outbox-relay migrate --schema \(table.schema)` for a table not installed yet.")
            }
        }
    }

    /// An unsharded relay on a sharded database would publish every shard's rows a second
    /// time, racing the shard relays on each key: refuse.
    fileprivate func refuseIfSharded(_ execute: (String) throws -> PGResult) throws {
        let names = try execute("SELECT pubname FROM pg_publication").rows.map { try $0.string("pubname") }
        guard let sharded = names.compactMap({ ShardSpec.fromPublicationName($0, base: publication) }).first else { return }
        throw RelayError(.publicationMisconfigured,
                         "This database is split into \(sharded.count) shards (publication \"\(sharded.publicationName(base: publication))\"), but this relay runs unsharded: it would publish every shard's rows again, out of order with the shard relays.",
                         fix: "run one relay per shard with --shard I/\(sharded.count) (I from 0 to \(sharded.count - 1)), or reshard to a single shard (`outbox-relay migrate --shards 1 --reshard`, then run it with --shard 0/1).")
    }
}

extension SlotPreflight.SlotState {
    /// Says at each session start whether the slot survives a primary failover: the metric
    /// always, a warning when a standby exists or the slot could fail over but a failover
    /// would not be safe, an info line otherwise.
    func reportFailover(slot: String, logger: Logger, metrics: RelayMetrics) {
        metrics.slotFailoverReady(slot: slot).record(failover.isReady ? 1 : 0)
        var metadata: Logger.Metadata = ["slot": "\(slot)", "failover": "\(failover.summary)"]
        if let failoverNotEnabled { metadata["failover_not_enabled"] = "\(failoverNotEnabled)" }
        if failover.deservesWarning || failoverNotEnabled != nil {
            logger.warning("the slot would not survive a primary failover", metadata: metadata)
        } else {
            logger.info("primary failover", metadata: metadata)
        }
    }
}
