import EphemeralServers
import Foundation
import KafkaClient
import Logging
@testable import OutboxRelayCLI
import PostgresClient
@testable import Relay
import RelayCore
import Synchronization
import Testing
import Threading

/// Issue 31, items 1 and 2, end to end (relay, Tansu, consumers): the sweeper re-sends only
/// where consumers write status back, never while they are down or behind, and every row
/// leaves the table by retention.
@Suite("Sweeper scope and retention")
struct SweeperScopeTests {
    /// The defaults (scope, attempts, backoff doubling) with short timings so rounds run fast.
    static func shortTimings(maxAttempts: Int = 10) -> SweeperPolicy {
        SweeperPolicy(interval: .milliseconds(500), minimumAge: .seconds(2), maxAttempts: maxAttempts,
                      backoffBase: .seconds(1), backoffCap: .seconds(2))
    }

    @Test("a foreign topic beside BOOK_SAVE: exactly one Kafka record per row, no DEAD, and its rows leave the table after retention")
    func foreignTopic() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let consumer = try RunningConsumer.start(ctx)
            let relay = try RunningRelay.start(ctx, sweeper: Self.shortTimings(), retention: .seconds(5))
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertOutboxRows(db, transactions: 5, rowsPerTransaction: 100, keys: 50, keyPrefix: "ORDER:", topic: "ORDER_PLACED")
            try await insertBookEvents(db, rows: 20, keys: 20, seed: 0)
            // `status` shows each topic's mode (the INIT rows make ORDER_PLACED known).
            let status = try await TopicModeStatus.lines(scope: SweeperPolicy().scope, tables: [.default], on: db)
            print("STATUS:\n" + status.joined(separator: "\n"))
            #expect(status.contains("topic ORDER_PLACED: publish_only"), "\(status)")
            #expect(status.contains { $0.hasPrefix("topic BOOK_SAVE: swept_by_") }, "\(status)")
            // Retention: every ORDER_PLACED row goes once the stream published it and it is 5 s old.
            #expect(await eventually(timeout: .seconds(90)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE topic = 'ORDER_PLACED'")) == 0
            }, "publish-only rows must leave the table after retention")
            // Rounds enough for today's sweeper to have re-sent every row several times.
            try await Task.sleep(for: .seconds(4))
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'DEAD'") == 0)
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE topic = 'BOOK_SAVE' AND status = 'INIT'") == 0)
            let records = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["ORDER_PLACED"], count: 2_000,
                                                 timeout: .seconds(60), idle: .seconds(5))
            let ids = Set(records.compactMap { $0.headerString("outbox-id") })
            print("FOREIGN TOPIC: \(records.count) records for 500 rows, \(records.filter(\.isSweeperResend).count) sweeper re-sends")
            #expect(records.count == 500 && ids.count == 500, "exactly one record per row: \(records.count) records, \(ids.count) ids")
            let resent = records.filter(\.isSweeperResend).count
            #expect(resent == 0)
            let modes = try await SweepScopeReader.modes(scope: SweeperPolicy().scope, on: db)
            #expect(SweepScope.mode(of: "ORDER_PLACED", in: modes) == .publishOnly)
            #expect(SweepScope.mode(of: "BOOK_SAVE", in: modes).name == "swept_by_progress", "the consumer registered: \(modes)")
            try await relay.stop()
            try await consumer.stop()
        }
    }

    @Test("/metrics of `run` shows each declared or registered topic's sweep mode")
    func metricsShowModes() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            // A registration as a write-back consumer makes it (ORDER_AUDIT, progress-swept).
            try await db.query("INSERT INTO outbox_writeback_consumer (topic, group_id) VALUES ('ORDER_AUDIT', 'audit')")
            let port = freeLoopbackPort()
            let relay = try startRelayProcess(ctx, extra: ["--set", "sweeper=true", "--sweeper-interval", "1s"], logName: "modes", httpPort: port)
            func mode(_ topic: String, _ mode: String, in body: String) -> Double? {
                body.split(separator: "\n").first { $0.hasPrefix("outbox_relay_sweeper_topic_mode{") && $0.contains("topic=\"\(topic)\"")
                    && $0.contains("mode=\"\(mode)\"") }.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            }
            var body = ""
            #expect(await eventually(timeout: .seconds(60)) {
                body = (await LoopbackHTTP.get(port: port, path: "/metrics"))?.body ?? ""
                return mode("ORDER_AUDIT", "swept_by_progress", in: body) == 1
            }, "\(body.split(separator: "\n").filter { $0.contains("topic_mode") })")
            #expect(mode("BOOK_SAVE", "swept_by_age", in: body) == 1 && mode("BOOK_SAVE", "publish_only", in: body) == 0)
            #expect(mode("PAYMENT_SAVE", "swept_by_age", in: body) == 1)
            #expect(mode("ORDER_AUDIT", "swept_by_age", in: body) == 0)
            #expect(await relay.terminate() == 0)
        }
    }

    @Test("under a steady foreign-topic load the outbox and its partial INIT index stay bounded")
    func boundedUnderForeignLoad() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let relay = try RunningRelay.start(ctx, sweeper: Self.shortTimings(), retention: .seconds(2))
            #expect(await eventually { relay.service.health.current.state == .streaming })
            // ~500 rows/s for 40 s; VACUUM every 10 s stands in for autovacuum, which makes the
            // space of deleted rows reusable (it does not shrink anything by itself).
            var counts: [Int] = []
            var sizes: [(table: Int, index: Int)] = []
            let start = ContinuousClock.now
            var nextSample = start + .seconds(10)
            while ContinuousClock.now - start < .seconds(40) {
                try await insertOutboxRows(db, transactions: 1, rowsPerTransaction: 50, keyPrefix: "ORDER:", topic: "ORDER_PLACED")
                try await Task.sleep(for: .milliseconds(100))
                if ContinuousClock.now >= nextSample {
                    nextSample = nextSample + .seconds(10)
                    try await db.query("VACUUM outbox")
                    counts.append(try await count(db, "SELECT count(*) AS n FROM outbox"))
                    let size = try await db.query("""
                        SELECT pg_relation_size('outbox') AS t, pg_relation_size('outbox_init_created_at') AS i
                        """).single()
                    sizes.append((try size.int("t"), try size.int("i")))
                }
            }
            let written = try await db.query("SELECT COALESCE(max(outbox_id), 0) AS n FROM outbox").single().int("n")
            print("BOUNDED: \(written) rows written; rows present every 10 s: \(counts); table/index bytes: \(sizes)")
            #expect(written > 5_000, "the load ran")
            // Present at any time: at most ~retention plus a few rounds' worth of rows.
            #expect(counts.allSatisfy { $0 <= 5_000 }, "\(counts)")
            // Far below what every row written would take: an index entry costs at least 20
            // bytes (tuple header, timestamptz, line pointer) and a row here about 300, so
            // the bounds are half of that; and the last two samples are level.
            if sizes.count >= 2 {
                let (previous, last) = (sizes[sizes.count - 2], sizes[sizes.count - 1])
                #expect(last.index <= written * 10, "index \(last.index) bytes for \(written) rows written: \(sizes)")
                // With few rows written (a slow host), the table's fixed share (pages autovacuum
                // has not yet returned) dominates: 2 MiB is still below what the ~9,000 rows a
                // slow run writes would take if none were deleted.
                #expect(last.table <= max(written * 150, 2 << 20), "table \(last.table) bytes for \(written) rows written: \(sizes)")
                #expect(last.index <= previous.index * 5 / 4 + 16_384, "the index still grows: \(sizes)")
            }
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox")) == 0
            }, "after the load stops, every row leaves")
            try await relay.stop()
        }
    }

    /// Messages on `topic` that `group` has not committed (nil when the broker did not say).
    /// Read without joining the group, as `outbox-relay status` does.
    static func groupLag(_ ctx: TestContext, group: String, topic: String) async -> Int64? {
        let servers = ctx.bootstrapServers
        return try? await runBlocking {
            let reader = try KafkaConsumer(configuration: KafkaConfiguration(bootstrapServers: servers), groupID: group, logger: Logger(label: "lag"))
            defer { reader.close() }
            return try reader.groupLag(topics: [topic])
        }
    }

    @Test("a consumer stopped for a while costs no re-send and no DEAD; a row it passed without confirming, or that never reached Kafka, is re-sent")
    func consumerOutage() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            // Committed before the slot exists: the stream never publishes it (it never reached Kafka).
            try await insertBookEvents(db, rows: 1, keys: 1, seed: 90_000)
            let unpublished = try await db.query("SELECT max(outbox_id) AS n FROM outbox").single().int64("n")
            var consumer = try RunningConsumer.start(ctx)
            // maxAttempts 3: today's sweeper would turn the outage's rows DEAD within seconds.
            let relay = try RunningRelay.start(ctx, sweeper: Self.shortTimings(maxAttempts: 3))
            #expect(await eventually { relay.service.health.current.state == .streaming })
            #expect(await eventually(timeout: .seconds(90)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE outbox_id = \(unpublished) AND status = 'COMPLETE'")) == 1
            }, "a row that never reached Kafka is sent by the sweeper once the consumers read past it")

            try await insertBookEvents(db, rows: 20, keys: 20, seed: 1)
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status <> 'COMPLETE'")) == 0
            })
            // Quiet first: a late redelivery of the row (a relay duplicate, or a batch the
            // consumer applies again) would complete it below without any re-send. That
            // happened twice in CI (attempts 0), the second time with the test running
            // alone, after 3 s without a message handled. So also wait until the group has
            // committed every message on the topic: past that, only a new message could
            // bring the row back, and the lag would show it.
            #expect(await eventually(timeout: .seconds(60)) { await Self.groupLag(ctx, group: "test-consumers", topic: "BOOK_SAVE") == 0 },
                    "the consumers commit every message they read")
            var handled = -1
            for _ in 0..<10 {
                let now = consumer.service.totals.applied + consumer.service.totals.duplicates
                if now == handled, await Self.groupLag(ctx, group: "test-consumers", topic: "BOOK_SAVE") == 0 { break }
                handled = now
                try await Task.sleep(for: .seconds(3))
            }
            // A consumer that passed a message without confirming (its write-back lost).
            let passed = try await db.query("SELECT max(outbox_id) AS n FROM outbox").single().int64("n")
            try await db.query("DELETE FROM booking_record WHERE outbox_id = $1", [.int(passed)])
            try await db.query("UPDATE outbox SET status = 'INIT' WHERE outbox_id = $1", [.int(passed)])
            // Re-sent once as a rule; a second re-send is the backoff's (2 s here) when the
            // consumer had not applied the first yet, as in the suite's loaded opening minute.
            let seen = Mutex<(status: String, attempts: Int)>(("?", -1))
            #expect(await eventually(timeout: .seconds(120)) {
                guard let row = try? await db.query("SELECT status, attempts FROM outbox WHERE outbox_id = $1", [.int(passed)]).single(),
                      let status = try? row.string("status"), let attempts = try? row.int("attempts") else { return false }
                seen.withLock { $0 = (status, attempts) }
                return status == "COMPLETE" && (1...3).contains(attempts)
            }, "a message passed without confirming is re-sent and then applied: last seen \(seen.withLock { $0 })")

            // The outage: 30 s without the consumer while 20 rows/s flow.
            try await consumer.stop()
            let before = try await db.query("SELECT max(outbox_id) AS n FROM outbox").single().int64("n")
            var worst = (attempted: 0, dead: 0)
            for second in 0..<30 {
                if second < 20 { try await insertBookEvents(db, rows: 20, keys: 40, seed: 100 + second) }
                try await Task.sleep(for: .seconds(1))
                let row = try await db.query("""
                    SELECT count(*) FILTER (WHERE attempts > 0) AS attempted, count(*) FILTER (WHERE status = 'DEAD') AS dead
                    FROM outbox WHERE outbox_id > $1
                    """, [.int(before)]).single()
                worst = (max(worst.attempted, try row.int("attempted")), max(worst.dead, try row.int("dead")))
            }
            #expect(worst.attempted == 0 && worst.dead == 0, "while the consumer is down nothing is due: \(worst)")

            consumer = try RunningConsumer.start(ctx)
            #expect(await eventually(timeout: .seconds(120)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status <> 'COMPLETE'")) == 0
            })
            try await Task.sleep(for: .seconds(3))  // a few more rounds
            let after = try await db.query("""
                SELECT count(*) AS n, count(*) FILTER (WHERE attempts > 0) AS resent, count(*) FILTER (WHERE status = 'DEAD') AS dead
                FROM outbox WHERE outbox_id > $1
                """, [.int(before)]).single()
            print("CONSUMER OUTAGE: \(try after.int("n")) rows written during 30 s down, \(try after.int("resent")) re-sent, \(try after.int("dead")) DEAD")
            #expect(try after.int("n") == 400)
            #expect(try after.int("resent") <= 4, "at most 1% re-sent")
            #expect(try after.int("dead") == 0)
            try await relay.stop()
            try await consumer.stop()
        }
    }
}
