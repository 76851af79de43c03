import ArgumentParser
import CLISettings
import Foundation
import KafkaClient
import Logging
import PostgresClient
import Relay
import RelayCore
import Schema
import Threading

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print slot lag, outbox counts and consumer lag; exit 2 when a threshold is crossed (usable as a check).",
        discussion: ExitStatus.helpText)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var set: SetOptions

    @Option(help: SettingsCatalog.help("slot"))
    var slot: String?
    @Option(name: .customLong("max-slot-lag"), help: "Fail when the slot holds more WAL than this (e.g. 1GiB).")
    var maxSlotLag: String?
    @Option(name: .customLong("max-oldest-init"), help: "Fail when the oldest INIT row is older than this (e.g. 5m).")
    var maxOldestInit: String?
    @Option(name: .customLong("max-dead"), help: "Fail when more rows than this are DEAD.")
    var maxDead: Int?
    @Option(name: .customLong("max-consumer-lag"), help: "Fail when the consumer group is more messages behind than this.")
    var maxConsumerLag: Int?

    func run() async throws {
        var extra = try set.flags()
        extra["slot"] = slot ?? extra["slot"]
        let resolved = ResolvedConfiguration(settings: try connection.settings(extra: extra))
        Observability.bootstrap(logLevel: .error)
        let slotName = resolved.settings.string("slot", default: SettingsCatalog.defaultText("slot"))
        let db: PGConnection
        do { db = try await PGConnection.connect(try resolved.databaseURL) } catch let error as PGError {
            throw StartFailure.postgres(error)
        }
        var breaches: [String] = []

        do {
            let pending = try await MigrationRunner().pending(on: db)
            print("schema: " + (pending.isEmpty ? "migrated" : "lacks \(pending.joined(separator: ", ")); run `outbox-relay migrate`"))
            if !pending.isEmpty { breaches.append("schema lacks \(pending.count) migration\(pending.count == 1 ? "" : "s")") }
        } catch let error as PGError {
            print("schema: unknown (\(error.message)\(error.sqlState == "42501" ? "; re-apply sql/roles.sql" : ""))")
        }

        let slotRows = try await db.query("""
            SELECT confirmed_flush_lsn::text AS confirmed, (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 AS lag,
                   active, wal_status FROM pg_replication_slots WHERE slot_name = $1
            """, [.text(slotName)]).rows
        if let shardBreaches = try await ShardStatus.check(db, slotBase: slotName, maxSlotLag: maxSlotLag,
                                                           publicationBase: resolved.settings.string("publication", default: SettingsCatalog.defaultText("publication")),
                                                           tables: try resolved.outboxTables()) {
            breaches += shardBreaches
        } else if let row = slotRows.first {
            let lag = try row.optionalInt64("lag") ?? 0
            print("slot \(slotName): confirmed \(try row.optionalString("confirmed") ?? "-"), lag \(lag) bytes, active \(try row.bool("active")), wal_status \(try row.optionalString("wal_status") ?? "-")")
            // Informational, not a breach: a standalone server is a valid deployment.
            let failover = try await runBlocking { try FailoverSlot.assess(slot: slotName) { try db.queryBlocking($0) } }
            print("slot \(slotName) failover: \(failover.summary)")
            if let limitText = maxSlotLag {
                guard let limit = Settings.parseBytes(limitText) else { throw ValidationError("--max-slot-lag \(limitText) is not a size (e.g. 1GiB).") }
                if lag > limit { breaches.append("slot lag \(lag) bytes > \(limit)") }
            }
        } else {
            print("slot \(slotName): missing")
            breaches.append("slot \(slotName) does not exist")
        }

        let tables = try resolved.outboxTables()
        var oldest = 0.0, dead = 0
        for table in tables {
            let counts = try await db.query("""
                SELECT count(*) FILTER (WHERE status = 'INIT') AS init, count(*) FILTER (WHERE status = 'PUBLISHED') AS published,
                       count(*) FILTER (WHERE status = 'COMPLETE') AS complete, count(*) FILTER (WHERE status = 'DEAD') AS dead,
                       COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status = 'INIT')), 0)::float8 AS oldest
                FROM \(table.sql)
                """).single()
            let tableOldest = try counts.double("oldest"), tableDead = try counts.int("dead")
            oldest = max(oldest, tableOldest)
            dead += tableDead
            // One table: the line as it always read; several: each names its table.
            let label = tables.count == 1 && table == .default ? "outbox" : "outbox \(table)"
            print("\(label): INIT \(try counts.int("init")), PUBLISHED \(try counts.int("published")), COMPLETE \(try counts.int("complete")), DEAD \(tableDead); oldest INIT \(String(format: "%.1f", tableOldest)) s")
        }
        if let limitText = maxOldestInit {
            guard let limit = Settings.parseDuration(limitText) else { throw ValidationError("--max-oldest-init \(limitText) is not a duration (e.g. 5m).") }
            if oldest > limit.inSeconds { breaches.append("oldest INIT row is \(Int(oldest)) s old > \(limit)") }
        }
        if let maxDead, dead > maxDead { breaches.append("\(dead) DEAD rows > \(maxDead)") }

        do {
            for line in try await TopicModeStatus.lines(scope: try resolved.sweeper().policy?.scope, tables: tables, on: db) { print(line) }
        } catch let error as PGError {
            print("topics: unknown (\(error.message); run `outbox-relay migrate`)")
        }

        let consumerConfiguration = try resolved.consumer()
        do {
            // librdkafka's calls block: off the cooperative pool.
            let lag = try await runBlocking {
                let consumer = try KafkaConsumer(configuration: consumerConfiguration.kafka, groupID: consumerConfiguration.groupID,
                                                 logger: Logger(label: "status"))
                defer { consumer.close() }
                return try consumer.groupLag(topics: consumerConfiguration.topics)
            }
            print("consumer group \(consumerConfiguration.groupID): lag \(lag) messages")
            if let maxConsumerLag, lag > maxConsumerLag { breaches.append("consumer lag \(lag) > \(maxConsumerLag)") }
        } catch {
            print("consumer group \(consumerConfiguration.groupID): unknown (\(error))")
            if maxConsumerLag != nil { breaches.append("consumer lag unavailable") }
        }

        if !breaches.isEmpty {
            print("CHECK FAILED: " + breaches.joined(separator: "; "))
            throw ExitCode(ExitStatus.thresholdCrossed.rawValue)
        }
        print("OK")
    }
}
