public import PGOutput
public import PostgresClient
import RelayCore

/// `outbox-relay migrate --shards N [--reshard]`: splits capture into N shards. Creates one
/// publication per shard, `<publication>_I_of_N`, whose row filter keeps the rows whose
/// `mq_key` hashes to shard I (`ShardSpec.predicateSQL`). Each shard's slot,
/// `<slot>_I`, is created by the shard relay's very first start, with an exported snapshot,
/// so that the rows still INIT committed before it are published first (as for an
/// unsharded first start): a slot created here could not do that without a broker.
///
/// Changing the layout (from one slot, or from another shard count) is a reshard and needs
/// `--reshard` plus every relay stopped: it drops the old layout's slots, their records in
/// `outbox_relay_slot` and the old shard publications, then creates the new ones. Nothing is
/// lost: every row the old slots had not published is still INIT, and each new shard's first
/// start publishes its INIT rows before streaming. Per-key order holds because no old relay
/// runs any more when the new ones start, and each key lives in one new shard. Idempotent:
/// running it again with the same N changes nothing.
///
/// Every shard publication carries every outbox table the relays capture (the
/// `outbox-tables` setting), each with the same row filter: a key lives in one shard
/// whichever table its rows are in. A table added later (`migrate --schema`) is added to the
/// existing shard publications by `addTable`, and by `apply` to those it finds without it.
public enum ShardMigration {
    public struct Report: Sendable, Equatable {
        public var count: Int
        public var createdPublications: [String] = []
        public var droppedPublications: [String] = []
        public var droppedSlots: [String] = []
        /// `table to publication` for each table added to a shard publication that existed.
        public var addedTables: [String] = []
    }

    public static func apply(on db: PGConnection, count: Int, reshard: Bool, slotBase: String = "outbox_relay",
                             publicationBase: String = "outbox_pub", tables: [OutboxTable] = [.default]) async throws -> Report {
        let target = ShardSpec.all(count: count)
        let publications = try await db.query("SELECT pubname FROM pg_publication").rows.map { try $0.string("pubname") }
        let oldShardPublications = publications.filter { ShardSpec.fromPublicationName($0, base: publicationBase) != nil }
        let counts = Set(oldShardPublications.compactMap { ShardSpec.fromPublicationName($0, base: publicationBase)?.count })
        let slots = try await db.query("""
            SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = current_database()
            """).rows.map { (name: try $0.string("slot_name"), pid: try $0.optionalInt64("active_pid")) }
            .filter { $0.name == slotBase || ShardSpec.indexFromSlotName($0.name, base: slotBase) != nil }
        let unsharded = slots.contains { $0.name == slotBase }
        let layout = ShardLayout(publicationCounts: counts, unshardedSlot: unsharded,
                                 shardSlotIndexes: slots.compactMap { ShardSpec.indexFromSlotName($0.name, base: slotBase) })

        var report = Report(count: count)
        if !layout.isCompatible(withCount: count) {
            guard reshard else {
                throw RelayError(.invalidConfiguration,
                                 "The database's capture layout is \(describe(unsharded: unsharded, counts: counts, slots: slots.map(\.name))); changing it to \(count) shards is a reshard, which drops the current slots.",
                                 fix: "follow the resharding procedure (docs/operations.md, \"Sharded capture\"): stop every relay, run `outbox-relay migrate --shards \(count) --reshard`, then start one relay per shard with --shard I/\(count).")
            }
            let active = slots.filter { $0.pid != nil }
            guard active.isEmpty else {
                throw RelayError(.slotInUse,
                                 "Resharding needs every relay stopped, but \(active.map { "slot \($0.name) is in use by process \($0.pid!)" }.joined(separator: ", ")).",
                                 fix: "stop every relay of the current layout (active and standby; SIGTERM), then run `outbox-relay migrate --shards \(count) --reshard` again.")
            }
            // The old publications first: a forgotten standby of the old layout then halts at
            // its next poll instead of creating a slot for the old row filter. Then the slots
            // and their records. A failure half-way leaves shard slots without publications,
            // which the next run treats as still to be resharded: never adopted.
            for publication in oldShardPublications where !target.contains(where: { $0.publicationName(base: publicationBase) == publication }) {
                try await db.query("DROP PUBLICATION IF EXISTS \(quoteIdentifier(publication))")
                report.droppedPublications.append(publication)
            }
            for slot in slots {
                try await db.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [.text(slot.name)])
                report.droppedSlots.append(slot.name)
            }
            // Every record of the layout, also of a slot an earlier attempt dropped already:
            // a record without its slot would stop the new shard's first start (invariant 8).
            // Slot names are [a-z0-9_]: nothing in the base is a regex metacharacter.
            try await db.query("DELETE FROM outbox_relay_slot WHERE slot_name = $1 OR slot_name ~ ('^' || $1 || '_[0-9]+$')",
                               [.text(slotBase)])
        }
        for shard in target {
            let name = shard.publicationName(base: publicationBase)
            guard !publications.contains(name) else {
                for table in tables {
                    if try await PublicationTables.add(table, to: name, rowFilter: shard.predicateSQL(), on: db) {
                        report.addedTables.append("\(table) to \(name)")
                    }
                }
                continue
            }
            let members = tables.map { PublicationTables.member($0, rowFilter: shard.predicateSQL()) }.joined(separator: ", ")
            try await db.query("CREATE PUBLICATION \(quoteIdentifier(name)) FOR TABLE \(members) WITH (publish = 'insert')")
            report.createdPublications.append(name)
        }
        return report
    }

    /// Adds `table` to every shard publication of `publicationBase` that lacks it, with the
    /// shard's row filter; returns the publications it was added to (none when unsharded).
    public static func addTable(_ table: OutboxTable, on db: PGConnection, publicationBase: String = "outbox_pub") async throws -> [String] {
        let names = try await db.query("SELECT pubname FROM pg_publication ORDER BY pubname").rows.map { try $0.string("pubname") }
        var added: [String] = []
        for name in names {
            guard let shard = ShardSpec.fromPublicationName(name, base: publicationBase) else { continue }
            if try await PublicationTables.add(table, to: name, rowFilter: shard.predicateSQL(), on: db) { added.append(name) }
        }
        return added
    }

    /// The shard layout a database has: the shard count of its shard publications, or nil
    /// when it has none (one unsharded slot, or nothing yet).
    public static func currentCount(on db: PGConnection, publicationBase: String = "outbox_pub") async throws -> Int? {
        let names = try await db.query("SELECT pubname FROM pg_publication").rows.map { try $0.string("pubname") }
        return names.compactMap { ShardSpec.fromPublicationName($0, base: publicationBase)?.count }.max()
    }

    private static func describe(unsharded: Bool, counts: Set<Int>, slots: [String]) -> String {
        var parts: [String] = []
        if unsharded { parts.append("one unsharded slot") }
        if !counts.isEmpty { parts.append(counts.sorted().map { "\($0) shards" }.joined(separator: " and ")) }
        if parts.isEmpty { parts.append("no shard publications") }
        return parts.joined(separator: " plus ") + " (slots: \(slots.isEmpty ? "none" : slots.sorted().joined(separator: ", ")))"
    }
}
