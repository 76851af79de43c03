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

    /// - Parameter partitions: of the `BENCH` topic, created before the warm-up rather
    ///   than left to auto-creation, so the run states its count (latency depends on how
    ///   many partitions share the broker connection).
    /// - Parameter postgresBinDir: the server to run (nil: `OUTBOX_PG_BIN`'s, or Debian's 15).
    static func start(partitions: Int, postgresBinDir: String? = nil) async throws -> BenchEnvironment {
        // Production-like decoding memory (64 MB default) so big transactions stream only
        // where PostgreSQL would really stream them.
        let cluster = try await PostgresCluster.start(extraSettings: ["max_wal_size": "4GB", "shared_buffers": "256MB"], binDir: postgresBinDir)
        let broker = try await TansuBroker.start()
        let database = try await cluster.createDatabase(prefix: "bench")
        let db = try await PGConnection.connect(database.url)
        try await MigrationRunner().run(on: db)
        try await broker.createTopic("BENCH", partitions: partitions)
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
        try await backlog(slots: slot.map { [BenchSlot(name: $0, plugin: plugin)] } ?? [], rows: rows, transactionRows: transactionRows,
                          topic: topic, truncate: truncate)
    }

    /// One backlog for several contenders: every slot is created before the rows, so each
    /// decodes exactly the same WAL. Then a checkpoint and an ANALYZE, so neither the
    /// checkpointer writing the backlog's dirty pages nor autovacuum's analyze of the new
    /// rows lands inside a contender's timing.
    @discardableResult
    /// `truncate: false` adds to the rows already there (a backlog for another slot).
    func backlog(slots: [BenchSlot], rows: Int, transactionRows: Int = 1_000, topic: String = "BENCH",
                 truncate: Bool = true) async throws -> LSN {
        if truncate { try await db.query("TRUNCATE outbox") }
        for slot in slots {
            try await db.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [.text(slot.name)])
            // A deliberately new slot: forget the old one's record, or the relay would
            // (rightly) refuse a slot found ahead of what it recorded.
            try await db.query("DELETE FROM outbox_relay_slot WHERE slot_name = $1", [.text(slot.name)])
            try await db.query("SELECT pg_create_logical_replication_slot($1, $2)", [.text(slot.name), .text(slot.plugin)])
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
        let end = try await db.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
        if !slots.isEmpty {
            try await db.query("ANALYZE outbox")
            try await db.query("CHECKPOINT")
        }
        return end
    }

    /// The server settings that shape the figures, as PostgreSQL reports them.
    func serverSettings() async throws -> [String: String] {
        let names = ["server_version", "shared_buffers", "wal_level", "fsync", "synchronous_commit", "full_page_writes", "max_wal_size",
                     "checkpoint_timeout", "logical_decoding_work_mem", "wal_sender_timeout", "max_connections", "autovacuum"]
        var settings: [String: String] = [:]
        for row in try await db.query("SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1::text[])",
                                      [.text("{" + names.joined(separator: ",") + "}")]).rows {
            settings[try row.string("name")] = try row.string("value")
        }
        return settings
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

/// A slot a contender drains, created by `BenchEnvironment.backlog(slots:)`.
struct BenchSlot: Hashable {
    var name: String
    var plugin = "pgoutput"
}

/// Resident memory of a process by what is mapped (a library, the binary, the heap,
/// anonymous memory), in bytes, largest first: what a process's RSS is made of. Code pages
/// of a library count once per process however little of it runs.
func residentByMapping(pid: Int32) -> [(mapping: String, bytes: Int)] {
    // Read to EOF: /proc files report size 0, and a read sized by it stops at one page.
    guard let data = FileHandle(forReadingAtPath: "/proc/\(pid)/smaps")?.readDataToEndOfFile() else { return [] }
    let smaps = String(decoding: data, as: UTF8.self)
    var totals: [String: Int] = [:]
    var current = "[anonymous]"
    for line in smaps.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if let first = fields.first, first.contains("-"), fields.count >= 5 {
            // A mapping header: address range, perms, offset, device, inode, [path].
            current = fields.count >= 6 ? String(fields[5...].joined(separator: " ")).split(separator: "/").last.map(String.init) ?? "?" : "[anonymous]"
        } else if line.hasPrefix("Rss:"), fields.count >= 2, let kb = Int(fields[1]) {
            totals[current, default: 0] += kb * 1024
        }
    }
    return totals.map { ($0.key, $0.value) }.sorted { $0.bytes > $1.bytes }
}

/// CPU time a process has used (user + system), in seconds: per row, a figure machine
/// noise barely moves, unlike rows/s when other work shares the cores.
func cpuSeconds(pid: Int32) -> Double? {
    guard let data = FileHandle(forReadingAtPath: "/proc/\(pid)/stat")?.readDataToEndOfFile() else { return nil }
    let stat = String(decoding: data, as: UTF8.self)
    // Fields after the command name (which may hold spaces, so split after its ")").
    guard let close = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
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
