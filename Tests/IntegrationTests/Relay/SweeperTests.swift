import Foundation
import KafkaClient
import Logging
import PostgresClient
@testable import Relay
import RelayCore
import Testing
import Threading

@Suite("Sweeper")
struct SweeperTests {
    /// The topics these tests sweep, declared as write-back (a topic nobody declares is publish-only).
    static let scope = SweepScope(declaredTopics: ["UNREAD", "T", "SWEEP", "STUCK"])
    static let fast = SweeperPolicy(interval: .milliseconds(200), minimumAge: .milliseconds(500), maxAttempts: 3,
                                    backoffBase: .milliseconds(300), backoffCap: .seconds(2), batchSize: 100, scope: scope)

    /// The sweeper's producer, as the relay's publisher shares it (`Publisher.runSweeper`).
    func makeProducers(_ ctx: TestContext) throws -> (ProducerHolder, RelayConfiguration) {
        let configuration = RelayConfiguration(databaseURL: ctx.databaseURL, kafka: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers))
        let producers = try ProducerHolder(configuration: configuration.kafka, logger: Logger(label: "sweeper-test"),
                                           onDelivery: { _ in }, onFatalError: { _ in })
        return (producers, configuration)
    }

    @Test("a row nobody consumes is re-sent with backoff, then marked DEAD and dead-lettered after the maximum attempts")
    func resendThenDead() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let relay = try RunningRelay.start(ctx, sweeper: Self.fast)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let id = try await Outbox_insertOne(db, topic: "UNREAD", key: "k1", payload: #"{"a":1}"#)
            // The relay's publish plus three sweeper sends would be 4; attempts stop at 3 then DEAD.
            #expect(await eventually(timeout: .seconds(30)) {
                (try? await db.query("SELECT status FROM outbox WHERE outbox_id = $1", [.int(id)]).single().string("status")) == "DEAD"
            })
            let row = try await db.query("SELECT attempts, last_error FROM outbox WHERE outbox_id = $1", [.int(id)]).single()
            #expect(try row.int("attempts") == 3)
            #expect(try row.optionalString("last_error")?.hasPrefix("max_attempts_exceeded") == true)
            let sent = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["UNREAD"], count: 4)
            #expect(sent.count == 4, "one relay publish and three resends")
            #expect(sent.allSatisfy { $0.headerString("outbox-id") == String(id) && $0.valueString == #"{"a": 1}"# })
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.dlq"], count: 1)
            #expect(dead.first?.headerString("outbox-dlq-reason") == "max_attempts_exceeded")
            #expect(dead.first?.headerString("outbox-id") == String(id))
            try await relay.stop()
        }
    }

    /// A PostgreSQL restart leaves the sweeper's idle connection dead; its next round failed
    /// and logged an error on every restart.
    @Test("a sweeper connection lost once is a warning, and the next round connects again and sweeps")
    func lostConnectionIsRoutine() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let logs = LogCapture(level: .warning)
            let relay = try RunningRelay.start(ctx, sweeper: Self.fast, logger: logs.logger(label: "relay-under-test"))
            #expect(await eventually { relay.service.health.current.state == .streaming })
            #expect(await eventually { await Self.terminateSweeperBackend(db) }, "the sweeper's connection was found and terminated")
            #expect(await eventually(timeout: .seconds(10)) { !logs.lines("sweep failed; retrying next round").isEmpty })
            let id = try await Outbox_insertOne(db, topic: "UNREAD", key: "k1", payload: #"{"a":1}"#)
            #expect(await eventually(timeout: .seconds(30)) {
                (try? await db.query("SELECT attempts FROM outbox WHERE outbox_id = $1", [.int(id)]).single().int("attempts")).map { $0 >= 1 } == true
            }, "the sweeper sweeps again")
            let failed = logs.lines("sweep failed; retrying next round")
            let levels = failed.map(\.level)
            #expect(levels == [.warning], "\(failed.map(\.metadata))")
            try await relay.stop()
        }
    }

    static func terminateSweeperBackend(_ db: PGConnection) async -> Bool {
        let terminated = try? await db.query("""
            SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
            WHERE datname = current_database() AND application_name LIKE '%-sweeper'
            """).single().int("n")
        return (terminated ?? 0) > 0
    }

    @Test("rows already COMPLETE or PUBLISHED are never re-sent; the claim query uses the partial index")
    func completeNeverResent() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await db.query("""
                INSERT INTO outbox (topic, mq_key, type, payload, status, created_at)
                SELECT 'T', 'k' || g, 'T', '{}', CASE WHEN g % 2 = 0 THEN 'COMPLETE' ELSE 'PUBLISHED' END, now() - interval '1 hour'
                FROM generate_series(1, 200) g
                """)
            let (producers, configuration) = try makeProducers(ctx)
            let sweeper = Sweeper(policy: Self.fast, retention: nil, configuration: configuration, logger: Logger(label: "t"), metrics: RelayMetrics())
            #expect(try await sweeper.snapshot(on: db, swept: ["T"]).ids.isEmpty)
            let all = try await db.query("SELECT outbox_id FROM outbox").rows.map { try $0.int64("outbox_id") }
            let result = try await sweeper.resend(all, on: db, producers: producers)
            #expect(result.resent.isEmpty && result.dead.isEmpty, "the claim re-checks the status")
            try await db.query("ANALYZE outbox")
            let plan = try await sweeper.explain(on: db)
            print("sweeper snapshot plan:\n\(plan)")
            #expect(plan.contains("outbox_init_created_at"), "\(plan)")
            await runBlocking { producers.close(timeout: .seconds(5)) }
        }
    }

    @Test("two sweepers claiming the same snapshot at once never send the same row")
    func concurrentSweepers() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await db.query("""
                INSERT INTO outbox (topic, mq_key, type, payload, created_at)
                SELECT 'SWEEP', 'k' || (g % 10), 'T', jsonb_build_object('n', g), now() - interval '1 minute'
                FROM generate_series(1, 1000) g
                """)
            let (producers, configuration) = try makeProducers(ctx)
            var policy = Self.fast
            policy.batchSize = 1_000
            // Production backoff: with the fast policy's 2 s cap, a row another sweeper sent
            // more than 2 s ago is legitimately due again, and a debug-build round can last that long.
            policy.backoffBase = .seconds(10)
            policy.backoffCap = .seconds(3_600)
            let sweepers = (0..<2).map { _ in Sweeper(policy: policy, retention: nil, configuration: configuration, logger: Logger(label: "t"), metrics: RelayMetrics()) }
            let ids = try await sweepers[0].snapshot(on: db, swept: ["SWEEP"]).ids
            #expect(ids.count == 1_000)
            let results = try await withThrowingTaskGroup(of: Sweeper.RoundResult.self) { group in
                for sweeper in sweepers {
                    group.addTask { try await sweeper.resend(ids, on: try await ctx.connect(), producers: producers) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let a = Set(results[0].resent), b = Set(results[1].resent)
            #expect(a.isDisjoint(with: b))
            #expect(a.count + b.count == 1_000)
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE attempts = 1") == 1_000)
            await runBlocking { producers.close(timeout: .seconds(5)) }
        }
    }

    @Test("a row the stream has not published is never re-sent: after an outage the sweeper waits for the stream and the consumers")
    func noRaceAfterOutage() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: db)
            let policy = SweeperPolicy(interval: .milliseconds(500), minimumAge: .seconds(3), maxAttempts: 10,
                                       backoffBase: .seconds(10), backoffCap: .seconds(3_600), batchSize: 500)
            // Warm up: relay and consumers running, the consumer group joined.
            let consumer = try RunningConsumer.start(ctx)
            var relay = try RunningRelay.start(ctx, sweeper: policy)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertBookEvents(db, rows: 10, keys: 40, seed: 0)
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 10
            })
            // The outage: no relay; a backlog builds up and ages past minimumAge.
            try await relay.stop()
            for seed in 1...300 { try await insertBookEvents(db, rows: 10, keys: 40, seed: seed) }
            try await Task.sleep(for: .seconds(4))
            relay = try RunningRelay.start(ctx, sweeper: policy)
            #expect(await eventually(timeout: .seconds(90)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status <> 'COMPLETE'")) == 0
            })
            try await Task.sleep(for: .seconds(3))  // a few more sweeper rounds
            let (check, messages) = try await checkDelivery(db, oracle: oracle, bootstrapServers: ctx.bootstrapServers)
            let resent = messages.filter(\.isSweeperResend).count
            print("SWEEPER after outage: \(check.committed) rows, \(resent) sweeper re-sends, \(check)")
            #expect(check.isClean, "\(check)")
            #expect(resent <= check.committed / 100, "sweeper re-sent \(resent) of \(check.committed) rows")
            try await relay.stop()
            try await consumer.stop()
            try await oracle.drop(on: db)
        }
    }

    @Test("the sweeper holds no row lock while it waits on Kafka (broker frozen)")
    func noLockAcrossKafkaWait() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            // Rows committed before the slot exists: the stream never sees them, only the sweeper.
            try await db.query("""
                INSERT INTO outbox (topic, mq_key, type, payload, created_at)
                SELECT 'STUCK', 'k' || g, 'T', '{}', now() - interval '1 hour' FROM generate_series(1, 20) g
                """)
            let relay = try RunningRelay.start(ctx, sweeper: Self.fast)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            ctx.broker!.freeze()
            defer { ctx.broker!.thaw() }
            // The sweeper claims them (last_sent_at set) and then waits for the frozen broker.
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE last_sent_at IS NOT NULL")) == 20
            })
            try await Task.sleep(for: .seconds(1))
            // A consumer's lock on a claimed row is granted at once.
            let other = try await ctx.connect()
            try await other.query("BEGIN")
            let locked = try await other.query("SELECT outbox_id FROM outbox WHERE topic = 'STUCK' FOR UPDATE NOWAIT").rows.count
            #expect(locked == 20)
            try await other.query("ROLLBACK")
            ctx.broker!.thaw()
            try await relay.stop()
        }
    }

    @Test("retention: old COMPLETE rows, old publish-only INIT rows and DEAD rows past their own retention go; swept INIT rows and young rows stay")
    func retention() async throws {
        try await withTestContext(broker: true) { ctx in
            let db = try await ctx.migrated()
            // 1-2000 COMPLETE 10 d; 2001-2500 COMPLETE 1 h; 2501-3000 INIT 10 d on the swept T;
            // 3001-3400 INIT 10 d on publish-only FOREIGN; 3401-3500 INIT 1 h on FOREIGN;
            // 3501-3550 DEAD 10 d; 3551-3600 DEAD 40 d.
            try await db.query("""
                INSERT INTO outbox (topic, mq_key, type, payload, status, created_at)
                SELECT CASE WHEN g BETWEEN 3001 AND 3500 THEN 'FOREIGN' ELSE 'T' END, 'k', 'T', '{}',
                       CASE WHEN g <= 2500 THEN 'COMPLETE' WHEN g <= 3500 THEN 'INIT' ELSE 'DEAD' END,
                       now() - CASE WHEN g BETWEEN 2001 AND 2500 OR g BETWEEN 3401 AND 3500 THEN interval '1 hour'
                                    WHEN g > 3550 THEN interval '40 days' ELSE interval '10 days' END
                FROM generate_series(1, 3600) g
                """)
            let (producers, configuration) = try makeProducers(ctx)
            let sweeper = Sweeper(policy: Self.fast, retention: .seconds(7 * 86_400), retentionBatch: 3_000, configuration: configuration,
                                  logger: Logger(label: "t"), metrics: RelayMetrics())
            let snapshot = try await sweeper.snapshot(on: db, swept: ["T"])
            #expect(snapshot.expired.count == 2_000 + 400 + 50)
            #expect(!snapshot.more)
            #expect(try await sweeper.deleteExpired(snapshot.expired, on: db, swept: ["T"]) == 2_450)
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'") == 500)
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'INIT' AND topic = 'T'") == 500)
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'INIT' AND topic = 'FOREIGN'") == 100)
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'DEAD'") == 50)
            // A full list asks for the next round at once.
            let small = Sweeper(policy: Self.fast, retention: .seconds(7 * 86_400), retentionBatch: 10, configuration: configuration,
                                logger: Logger(label: "t"), metrics: RelayMetrics())
            #expect(try await small.snapshot(on: db, swept: []).more)
            await runBlocking { producers.close(timeout: .seconds(5)) }
        }
    }
}
