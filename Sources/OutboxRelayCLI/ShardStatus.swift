import ArgumentParser
import CLISettings
import Foundation
import PGOutput
import PostgresClient
import Relay
import RelayCore

/// `status` on a sharded database: one line per shard (its slot's confirmed LSN and lag,
/// whether a relay streams from it, its INIT rows), and a breach for every shard that no
/// relay serves, since its keys are then not delivered at all.
enum ShardStatus {
    /// The breaches, or nil when the database is not sharded (the caller reports the slot).
    static func check(_ db: PGConnection, slotBase: String, maxSlotLag: String?, publicationBase: String,
                      tables: [OutboxTable] = [.default]) async throws -> [String]? {
        guard let count = try await ShardMigration.currentCount(on: db, publicationBase: publicationBase) else { return nil }
        let limit: Int?
        if let maxSlotLag {
            guard let parsed = Settings.parseBytes(maxSlotLag) else { throw ValidationError("--max-slot-lag \(maxSlotLag) is not a size (e.g. 1GiB).") }
            limit = parsed
        } else { limit = nil }
        let slots = try await db.query("""
            SELECT slot_name, confirmed_flush_lsn::text AS confirmed, (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 AS lag,
                   active_pid, wal_status FROM pg_replication_slots WHERE database = current_database()
            """).rows
        // Every table's INIT rows: a shard's relay serves its keys in all of them.
        let initRows = try await db.query("""
            SELECT \(ShardSpec.shardExpressionSQL(count: count)) AS shard, count(*) AS init,
                   EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest
            FROM (\(tables.map { "SELECT mq_key, created_at FROM \($0.sql) WHERE status = 'INIT'" }.joined(separator: " UNION ALL "))) AS o
            GROUP BY 1
            """).rows
        var breaches: [String] = []
        print("shards: \(count)")
        for shard in ShardSpec.all(count: count) {
            let slotName = shard.slotName(base: slotBase)
            let pending = try initRows.first { try $0.int("shard") == shard.index }
            let initText = try pending.map { "INIT \(try $0.int("init")), oldest INIT \(String(format: "%.1f", try $0.double("oldest"))) s" } ?? "INIT 0"
            guard let slot = try slots.first(where: { try $0.string("slot_name") == slotName }) else {
                print("shard \(shard) slot \(slotName): missing, NO ACTIVE RELAY (a shard relay creates the slot at its first start); \(initText)")
                breaches.append("shard \(shard) has no active relay (slot \(slotName) missing)")
                continue
            }
            let lag = try slot.optionalInt64("lag") ?? 0
            let pid = try slot.optionalString("active_pid")
            print("shard \(shard) slot \(slotName): confirmed \(try slot.optionalString("confirmed") ?? "-"), lag \(lag) bytes, "
                  + "\(pid.map { "active relay pid \($0)" } ?? "NO ACTIVE RELAY"), wal_status \(try slot.optionalString("wal_status") ?? "-"); \(initText)")
            if pid == nil { breaches.append("shard \(shard) has no active relay (slot \(slotName))") }
            if let limit, lag > limit { breaches.append("shard \(shard) slot lag \(lag) bytes > \(limit)") }
        }
        return breaches
    }
}
