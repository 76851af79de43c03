import Foundation
import KafkaClient
import PGOutput
import PostgresClient

/// An independent record of commit order: a `test_decoding` slot created before the
/// workload lists every committed outbox insert in commit order, with no code shared with
/// the relay's decoder.
struct CommitOrderOracle {
    let slot: String

    static func create(on connection: PGConnection) async throws -> CommitOrderOracle {
        let slot = "oracle_\(UInt32.random(in: 0...UInt32.max))"
        try await connection.query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", [.text(slot)])
        return CommitOrderOracle(slot: slot)
    }

    /// Committed ids of `table` in commit order, with their keys.
    func committed(on connection: PGConnection, table: OutboxTable = .default) async throws -> [(id: Int64, key: String)] {
        let rows = try await connection.query("""
            SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL, 'include-xids', '0')
            WHERE data LIKE $2
            """, [.text(slot), .text("table \(table.schema).\(table.name): INSERT:%")])
        return try rows.rows.map { row in
            let data = try row.string("data")
            guard let idRange = data.range(of: "outbox_id[bigint]:") else { throw CheckerError("no outbox_id in \(data.prefix(200))") }
            let idText = data[idRange.upperBound...].prefix { $0.isNumber }
            guard let keyRange = data.range(of: "mq_key[text]:'") else { throw CheckerError("no mq_key in \(data.prefix(200))") }
            let key = data[keyRange.upperBound...].prefix { $0 != "'" }
            return (Int64(idText)!, String(key))
        }
    }

    /// LSN of the last committed outbox change: once the relay's slot is confirmed at or
    /// past it, every row before it was acknowledged. (pg_current_wal_lsn() is no good in
    /// a shared cluster: other tests' WAL moves it without involving this slot.)
    func lastChangeLSN(on connection: PGConnection) async throws -> LSN {
        try await connection.query("SELECT COALESCE(max(lsn), '0/0')::text AS lsn FROM pg_logical_slot_peek_changes($1, NULL, NULL)",
                                   [.text(slot)]).single().lsn("lsn")
    }

    func drop(on connection: PGConnection) async throws {
        try await connection.query("SELECT pg_drop_replication_slot($1)", [.text(slot)])
    }
}

struct CheckerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Verifies the docs/architecture.md guarantees on what reached Kafka: every committed id at
/// least once, and per key, first deliveries in commit order.
struct DeliveryCheck: CustomStringConvertible {
    var committed = 0
    var delivered = 0
    var missing: [Int64] = []
    var unexpected: [Int64] = []
    var duplicates = 0
    var orderViolations: [String] = []

    var isClean: Bool { missing.isEmpty && unexpected.isEmpty && orderViolations.isEmpty }

    var description: String {
        "committed \(committed), delivered \(delivered), missing \(missing.count) \(missing.prefix(10)), unexpected \(unexpected.count) \(unexpected.prefix(10)), duplicates \(duplicates), order violations \(orderViolations.count) \(orderViolations.prefix(3))"
    }

    init(committed: [(id: Int64, key: String)], messages: [KafkaMessage]) {
        self.committed = committed.count
        delivered = messages.count
        let committedIDs = Set(committed.map(\.id))
        var firstPosition: [Int64: Int] = [:]  // id -> index of its first delivery
        var deliveredIDs: [Int64] = []
        for (index, message) in messages.enumerated() {
            guard let idText = message.header("outbox-id"), let id = Int64(String(decoding: idText, as: UTF8.self)) else {
                orderViolations.append("message at \(message.partition)/\(message.offset) has no outbox-id header")
                continue
            }
            if firstPosition[id] == nil { firstPosition[id] = index; deliveredIDs.append(id) } else { duplicates += 1 }
            if !committedIDs.contains(id) { unexpected.append(id) }
        }
        missing = committed.map(\.id).filter { firstPosition[$0] == nil }
        // Per key: the first deliveries' order must equal the commit order.
        var lastPositionPerKey: [String: (Int, Int64)] = [:]
        for (id, key) in committed {
            guard let position = firstPosition[id] else { continue }
            if let (previous, previousID) = lastPositionPerKey[key], previous > position {
                orderViolations.append("key \(key): id \(id) committed after \(previousID) but first delivered before it")
            }
            lastPositionPerKey[key] = (position, id)
        }
    }
}

/// Reads every message of `topics` and checks them against the oracle's commit order.
/// Returns the check and the messages (for header counts such as sweeper re-sends).
func checkDelivery(_ db: PGConnection, oracle: CommitOrderOracle, bootstrapServers: String, topics: [String] = ["BOOK_SAVE"],
                   timeout: Duration = .seconds(60), idle: Duration = .seconds(3)) async throws -> (check: DeliveryCheck, messages: [KafkaMessage]) {
    let committed = try await oracle.committed(on: db)
    let messages = try await readMessages(bootstrapServers: bootstrapServers, topics: topics, count: .max, timeout: timeout, idle: idle)
    return (DeliveryCheck(committed: committed, messages: messages), messages)
}

extension KafkaMessage {
    /// True for a sweeper re-send (it carries `outbox-resend-attempt`).
    var isSweeperResend: Bool { header("outbox-resend-attempt") != nil }
}
