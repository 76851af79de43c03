import Consumers
import Foundation
import KafkaClient
import PostgresClient
import Relay
import RelayCore
import Testing

@Suite("Fault injection: broker errors and bad input", .serialized)
struct FaultInputTests {
    @Test("mock cluster: retriable errors, a fatal OUT_OF_ORDER_SEQUENCE_NUMBER; a broker size error and a missing ACL pause the line instead of killing rows; an oversized row is dead-lettered alone")
    func mockClusterErrors() async throws {
        try await withTestContext(broker: false) { ctx in
            let db = try await ctx.migrated()
            let mock = try KafkaMockCluster()
            try mock.createTopic("BOOK_SAVE")
            try mock.createTopic("outbox.dlq")
            // One request in flight per connection, because of how the mock fakes
            // REQUEST_TIMED_OUT: it answers without persisting, while librdkafka must treat a
            // broker timeout as "possibly persisted"; with several requests in flight the mock
            // then accepts the next batch's sequence (real Kafka refuses the gap) and
            // librdkafka implicitly acknowledges the batch the mock dropped. Observed here as a
            // missing row in about one run out of three; real brokers cannot produce it.
            let logs = LogCapture(level: .info)
            let relay = try RunningRelay.start(ctx, bootstrapServers: mock.bootstrapServers, configure: {
                $0.kafka.properties["max.in.flight.requests.per.connection"] = "1"
                $0.kafka.properties["message.max.bytes"] = "200000"
                $0.reconnectBackoff = Backoff(initial: .milliseconds(200), maximum: .seconds(1))
            }, logger: logs.logger(label: "relay-under-test"))
            let health = relay.service.health
            #expect(await eventually { health.current.state == .streaming })
            func published() -> Int { health.published }

            try await insertOutboxRows(db, transactions: 10, rowsPerTransaction: 5)
            #expect(await eventually { published() >= 50 })

            mock.pushRequestErrors(.produce, [6, 7, 6])  // NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT: retried
            try await insertOutboxRows(db, transactions: 10, rowsPerTransaction: 5)
            #expect(await eventually { published() >= 100 })

            mock.pushRequestErrors(.produce, [45])  // OUT_OF_ORDER_SEQUENCE_NUMBER: fatal for an idempotent producer
            try await insertOutboxRows(db, transactions: 10, rowsPerTransaction: 5)
            #expect(await eventually(timeout: .seconds(60)) { published() >= 150 })

            // MSG_SIZE_TOO_LARGE from the broker fails a whole batch: not the rows' fault.
            mock.pushRequestErrors(.produce, [10])
            let publishedBefore = published()
            let batchMate = try await Outbox_insertOne(db, topic: "BOOK_SAVE", key: "batch-mate")
            #expect(await eventually(timeout: .seconds(30)) { published() > publishedBefore && health.pausedBecause == nil },
                    "the line pauses, retries and resumes: \(health.pausedBecause ?? "not paused")")
            #expect(try await status(db, batchMate) == "INIT", "not dead-lettered")

            // A missing ACL: the next 6 produce requests fail with TOPIC_AUTHORIZATION_FAILED,
            // as they would until an operator grants it; then it is "fixed". Each retry
            // costs about one produce request and ~2 s (backoff, a new producer, the
            // slot read again), 4 s or more under a loaded CI run: 15 requests once took
            // longer than the 60 s the resume is given.
            mock.pushRequestErrors(.produce, Array(repeating: 29, count: 6))
            let unauthorized = try await Outbox_insertOne(db, topic: "BOOK_SAVE", key: "authz")
            #expect(await eventually(timeout: .seconds(30)) { health.pausedBecause?.contains("authorization") == true },
                    "paused: \(health.pausedBecause ?? "nil")")
            let paused = health.pausedBecause ?? ""
            #expect(paused.contains("authorization") && paused.contains("Fix:"), "\(paused)")
            #expect(!health.isReady(), "/readyz is 503 while paused")
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'DEAD'") == 0, "an operator error never kills rows")
            #expect(await eventually(timeout: .seconds(60)) { health.pausedBecause == nil }, "publishing resumes by itself")
            // One fault, one error line with its fix: the retries that fail the same way
            // until the operator fixes it are routine, not errors of their own.
            let authorization = logs.all.filter { $0.metadata["problem"]?.contains("authorization") == true || $0.metadata["error"]?.contains("authorization") == true }
            let retries = authorization.filter { $0.message == "publishing paused; retrying from the slot" }
            #expect(retries.count >= 2, "the pause was retried: \(authorization.map(\.message))")
            #expect(authorization.filter { $0.level >= .error }.map(\.message) == ["publishing paused: an operator must fix the Kafka side; the relay retries with backoff and resumes by itself"],
                    "\(authorization.map { "\($0.level) \($0.message)" })")

            // A row over message.max.bytes is the row's own fault: dead-lettered before it is
            // produced, alone; its neighbours in the same transaction are delivered.
            try await db.query("""
                INSERT INTO outbox (topic, mq_key, type, payload)
                SELECT 'BOOK_SAVE', 'big-' || g, 'BOOK_SAVE',
                       CASE WHEN g = 2 THEN jsonb_build_object('blob', repeat('x', 300000)) ELSE '{"n": 1}'::jsonb END
                FROM generate_series(1, 3) g
                """)
            let tooLarge = try await db.query("SELECT outbox_id FROM outbox WHERE mq_key = 'big-2'").single().int64("outbox_id")
            #expect(await eventually { (try? await status(db, tooLarge)) == "DEAD" })

            try await insertOutboxRows(db, transactions: 10, rowsPerTransaction: 5)
            let all = try await db.query("SELECT outbox_id FROM outbox WHERE status = 'INIT'").rows.map { try String($0.int64("outbox_id")) }
            #expect(all.contains(String(batchMate)) && all.contains(String(unauthorized)))
            let delivered = try await readMessages(bootstrapServers: mock.bootstrapServers, topics: ["BOOK_SAVE"], count: .max,
                                                   timeout: .seconds(60), idle: .seconds(4))
            let ids = Set(delivered.compactMap { $0.headerString("outbox-id") })
            #expect(Set(all).isSubset(of: ids), "every live row delivered despite the injected errors")
            let dead = try await readMessages(bootstrapServers: mock.bootstrapServers, topics: ["outbox.dlq"], count: 1)
            #expect(dead.compactMap { $0.headerString("outbox-id") } == [String(tooLarge)])
            #expect(dead.first?.headerString("outbox-dlq-reason") == "message_too_large")
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'DEAD'") == 1)
            print("FAULT mock-cluster errors: \(all.count) live rows delivered (\(delivered.count) messages incl. duplicates); ACL pause and broker size error resumed; 1 oversized row dead-lettered")
            try await relay.stop()
        }
    }

    @Test("bad input: invalid and SQL-like topics, a 2 MB payload, an empty key, an unknown type, unparseable JSON; the line keeps moving")
    func badInput() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            // Emulate an application writing without our CHECK constraints (a legacy schema).
            try await db.query("ALTER TABLE outbox DROP CONSTRAINT outbox_topic_check, DROP CONSTRAINT outbox_mq_key_check")
            let relay = try RunningRelay.start(ctx)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let consumer = try RunningConsumer.start(ctx, batchSize: 8)
            try await insertBookEvents(db, rows: 10, keys: 5, seed: 1)
            let badTopic = try await Outbox_insertOne(db, topic: "bad topic", key: "k")
            let sqlTopic = try await Outbox_insertOne(db, topic: "x'; DROP TABLE outbox;--", key: "k")
            let bigPayload = try await Outbox_insertOne(db, topic: "BOOK_SAVE", key: "k",
                                                        payload: "{\"blob\":\"" + String(repeating: "x", count: 2_000_000) + "\"}")
            let emptyKey = try await Outbox_insertOne(db, topic: "BOOK_SAVE", key: "")
            try await insertBookEvents(db, rows: 1, keys: 5, seed: 1_000, type: "NO_SUCH_TYPE")
            try await db.query("INSERT INTO outbox (topic, mq_key, type, payload) VALUES ('BOOK_SAVE', 'k', 'BOOK_SAVE', '{\"book\": 5}')")
            try await insertBookEvents(db, rows: 10, keys: 5, seed: 2_000)

            for (id, reason) in [(badTopic, "invalid_topic"), (sqlTopic, "invalid_topic"), (bigPayload, "message_too_large"), (emptyKey, "malformed_row")] {
                #expect(await eventually { (try? await status(db, id)) == "DEAD" }, "row \(id) should be DEAD (\(reason))")
                let error = try await db.query("SELECT last_error FROM outbox WHERE outbox_id = $1", [.int(id)]).single().string("last_error")
                #expect(error.hasPrefix(reason), "row \(id): \(error)")
            }
            let relayDLQ = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.dlq"], count: 4)
            #expect(relayDLQ.count == 4)
            let big = relayDLQ.first { $0.headerString("outbox-id") == String(bigPayload) }
            #expect(big?.value.isEmpty == true && big?.headerString("outbox-dlq-original-size") != nil, "oversized value replaced by its size")
            let consumerDLQ = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.consumer.dlq"], count: 2)
            #expect(Set(consumerDLQ.compactMap { $0.headerString("outbox-dlq-reason") }) == ["unknown_type", "unparseable"])
            #expect(await eventually { (try? await count(db, "SELECT count(*) AS n FROM booking_record")) == 20 }, "good rows before and after are applied")
            #expect(try await count(db, "SELECT count(*) AS n FROM pg_tables WHERE tablename = 'outbox'") == 1)
            #expect(relay.service.health.current.state == .streaming)
            print("FAULT bad input: 4 rows dead-lettered by the relay, 2 poison messages dead-lettered by the consumers, 20 good rows applied")
            try await consumer.stop()
            try await relay.stop()
        }
    }
}

func status(_ db: PGConnection, _ id: Int64) async throws -> String {
    try await db.query("SELECT status FROM outbox WHERE outbox_id = $1", [.int(id)]).single().string("status")
}
