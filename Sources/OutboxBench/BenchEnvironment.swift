import EphemeralServers
import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import Relay
import Schema

/// One throwaway PostgreSQL and Tansu for the whole run, and helpers to build backlogs.
struct BenchEnvironment {
    let cluster: PostgresCluster
    let broker: TansuBroker
    let databaseURL: String
    let databaseName: String
    let db: PGConnection
    /// librdkafka overrides for every relay the bench runs (tuning experiments).
    var relayKafkaProperties: [String: String] = [:]

    /// The Kafka configuration the relays under test use.
    var relayKafka: KafkaConfiguration {
        var kafka = KafkaConfiguration(bootstrapServers: broker.bootstrapServers)
        kafka.properties.merge(relayKafkaProperties) { $1 }
        return kafka
    }

    static func start() async throws -> BenchEnvironment {
        // Production-like decoding memory (64 MB default) so big transactions stream only
        // where PostgreSQL would really stream them.
        let cluster = try await PostgresCluster.start(extraSettings: ["max_wal_size": "4GB", "shared_buffers": "256MB"])
        let broker = try await TansuBroker.start()
        let database = try await cluster.createDatabase(prefix: "bench")
        let db = try await PGConnection.connect(database.url)
        try await MigrationRunner().run(on: db)
        try await warmUp(topics: ["BENCH", "bench.shell"], bootstrapServers: broker.bootstrapServers)
        return BenchEnvironment(cluster: cluster, broker: broker, databaseURL: database.url, databaseName: database.name, db: db)
    }

    /// Creates the topics (auto-creation on first produce) and waits until each accepted a
    /// message, so no contender pays topic creation and leader discovery inside its timing.
    private static func warmUp(topics: [String], bootstrapServers: String) async throws {
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, clientID: "bench-warm-up"),
                                         logger: Logger(label: "bench-warm-up"), onDelivery: { _ in })
        for topic in topics {
            _ = try await producer.send(topic: topic, key: Array("warm-up".utf8), value: Array("{}".utf8))
        }
        await producer.close()
    }

    func stop() async {
        await broker.stop()
        await cluster.stop()
    }

    /// libpq key/value string for the server binaries (pg_recvlogical, pgbench).
    var keyValueDSN: String { "host=127.0.0.1 port=\(cluster.port) dbname=\(databaseName) user=postgres" }

    /// Empties the outbox, creates `slot` (pgoutput unless told otherwise), then commits
    /// `rows` rows of about 230 bytes in `transactionRows`-row transactions. Returns the
    /// WAL position after the backlog.
    @discardableResult
    func backlog(slot: String?, plugin: String = "pgoutput", rows: Int, transactionRows: Int = 1_000, topic: String = "BENCH",
                 truncate: Bool = true) async throws -> LSN {
        if truncate { try await db.query("TRUNCATE outbox") }
        if let slot {
            try await db.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [.text(slot)])
            // A deliberately new slot: forget the old one's record, or the relay would
            // (rightly) refuse a slot found ahead of what it recorded.
            try await db.query("DELETE FROM outbox_relay_slot WHERE slot_name = $1", [.text(slot)])
            try await db.query("SELECT pg_create_logical_replication_slot($1, $2)", [.text(slot), .text(plugin)])
        }
        var written = 0
        while written < rows {
            let n = min(transactionRows, rows - written)
            try await db.query("""
                INSERT INTO outbox (topic, mq_key, type, payload)
                SELECT $1, 'BOOK:' || (g % 1000), 'BOOK_SAVE',
                       jsonb_build_object('book', jsonb_build_object('bookingId', g, 'seatId', g % 1000, 'userId', 7, 'price', 50000, 'status', 'RESERVED'),
                                          'waitToken', jsonb_build_object('tokenId', 7, 'userId', 7, 'token', 'b1946ac9', 'status', 'ACTIVE'))
                FROM generate_series($2::int, $3::int) g
                """, [.text(topic), .int(written + 1), .int(written + n)])
            written += n
        }
        return try await db.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
    }

    func dropSlot(_ slot: String) async throws {
        try await db.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [.text(slot)])
        try await db.query("DELETE FROM outbox_relay_slot WHERE slot_name = $1", [.text(slot)])
    }

    func confirmedLSN(_ slot: String) async throws -> LSN {
        try await db.query("SELECT COALESCE(confirmed_flush_lsn, '0/0')::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [.text(slot)])
            .rows.first?.lsn("lsn") ?? .invalid
    }
}

/// Peak resident memory of a process (VmHWM), in bytes.
func peakRSS(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
        return kb.map { $0 * 1024 }
    }
    return nil
}
