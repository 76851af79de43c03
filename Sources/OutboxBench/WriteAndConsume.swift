import Consumers
import EphemeralServers
import Foundation
import KafkaClient
import Logging
import PostgresClient
import Relay

enum TriggerCost {
    /// What is on the outbox table while pgbench writes, and which relay runs.
    enum Setup: String, CaseIterable {
        /// The baseline: no trigger, a stream-mode relay draining what pgbench writes.
        case none = "no trigger, stream-mode relay running"
        /// The trigger before the doorbell: NOTIFY on every inserting commit.
        case everyCommit = "NOTIFY on every commit, notify-mode relay running"
        /// Today's trigger: NOTIFY only while the relay's doorbell flag is set.
        case doorbell = "doorbell trigger, notify-mode relay running"
    }

    /// The trigger body notify mode shipped before the doorbell, kept here as the baseline
    /// the doorbell is measured against.
    static let everyCommitTrigger = """
        CREATE OR REPLACE FUNCTION outbox_relay_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN PERFORM pg_notify('outbox_relay', ''); RETURN NULL; END $fn$;
        CREATE OR REPLACE TRIGGER outbox_relay_notify AFTER INSERT ON outbox
            FOR EACH STATEMENT EXECUTE FUNCTION outbox_relay_notify();
        """

    /// Single-row INSERT transactions from 8 pgbench clients for `seconds` while a relay
    /// (in this process) drains them; returns tps.
    static func insertTPS(_ env: BenchEnvironment, _ setup: Setup, seconds: Int) async throws -> Double {
        let slot = "bench_trigger"
        try await env.db.query("TRUNCATE outbox")
        try await env.dropSlot(slot)
        switch setup {
        case .none: try await NotifyTrigger.remove(on: env.db)
        case .everyCommit: try await env.db.executeScript(everyCommitTrigger)
        case .doorbell: try await NotifyTrigger.install(on: env.db)
        }
        let (relay, task) = try await startStreaming(env, slot: slot, capture: setup == .none ? .stream : .notify, label: "bench-trigger-relay")
        let script = tempPath("insert.sql")
        try """
            INSERT INTO outbox (topic, mq_key, type, payload) VALUES ('BENCH', 'BOOK:' || (random() * 1000)::int, 'BOOK_SAVE', '{"book": {"bookingId": 1, "seatId": 2, "userId": 7, "price": 50000, "status": "RESERVED"}, "waitToken": {"tokenId": 7, "userId": 7, "token": "b1946ac9", "status": "ACTIVE"}}');
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let process = try ChildProcess([env.cluster.binary("pgbench"), "-n", "-c", "8", "-j", "2", "-T", String(seconds), "-f", script, env.keyValueDSN],
                                       outputPath: tempPath("pgbench-\(setup).log"))
        let status = await process.waitForExit()
        relay.stop()
        try await task.value
        try await env.dropSlot(slot)
        try await NotifyTrigger.remove(on: env.db)
        guard status == 0, let line = process.output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
              let tps = line.dropFirst(6).split(separator: " ").first.flatMap({ Double($0) }) else {
            throw BenchError("pgbench failed (\(status)): \(process.output.suffix(500))")
        }
        try? FileManager.default.removeItem(atPath: process.outputPath)
        return tps
    }
}

enum ConsumerBench {
    /// Puts `rows` BOOK_SAVE events in the outbox and in Kafka (through the relay), once.
    static func prepare(_ env: BenchEnvironment, rows: Int) async throws {
        let slot = "bench_consumer_feed"
        try await env.backlog(slot: slot, rows: rows, transactionRows: 1_000, topic: "BOOK_SAVE")
        var configuration = RelayConfiguration(databaseURL: env.databaseURL, kafka: KafkaConfiguration(bootstrapServers: env.broker.bootstrapServers))
        configuration.slotName = slot
        configuration.spillDirectory = NSTemporaryDirectory()
        let relay = try RelayService(configuration: configuration, sweeper: nil, logger: Logger(label: "bench-feed"))
        let task = Task { try await relay.run() }
        while relay.health.published < rows { try await Task.sleep(for: .milliseconds(20)) }
        relay.stop()
        try await task.value
        try await env.dropSlot(slot)
    }

    /// Effects per second for one fresh consumer group reading the prepared topic, over its
    /// first `rows` effects.
    static func effectsPerSecond(_ env: BenchEnvironment, rows: Int, batchSize: Int) async throws -> Double {
        try await env.db.query("UPDATE outbox SET status = 'INIT' WHERE status <> 'INIT'")
        try await env.db.query("TRUNCATE booking_record")
        // The same table for every run: the reset above leaves a dead version of every row
        // behind, and without this each run would pay for all the runs before it.
        try await env.db.query("VACUUM FULL outbox")
        try await env.db.query("CHECKPOINT")
        var configuration = ConsumerConfiguration(databaseURL: env.databaseURL, kafka: KafkaConfiguration(bootstrapServers: env.broker.bootstrapServers))
        configuration.groupID = "bench-\(UUID().uuidString)"
        configuration.batchSize = batchSize
        configuration.topics = ["BOOK_SAVE"]
        let consumer = try ConsumerService(configuration: configuration, logger: Logger(label: "bench-consumer"))
        let task = Task { try await consumer.run() }
        // Time from the first applied effect, so the group join (seconds on Tansu) is excluded.
        while consumer.totals.applied == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let started = ContinuousClock.now, first = consumer.totals.applied
        while consumer.totals.applied < rows { try await Task.sleep(for: .milliseconds(10)) }
        let elapsed = ContinuousClock.now - started
        consumer.stop()
        try await task.value
        return Double(rows - first) / seconds(elapsed)
    }
}
