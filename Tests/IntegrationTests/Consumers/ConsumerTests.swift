@testable import Consumers
import Foundation
import KafkaClient
import Logging
import PostgresClient
import Schema
import Synchronization
import Testing

@Suite("Consumers apply effects exactly once")
struct ConsumerTests {
    @Test("the same message delivered three times applies its effect once")
    func triplicate() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            // A payment too, so both handlers run.
            let user = try await Self.bookSeatsAndPayOne(db, count: 5)
            let rows = try await produceOutboxRows(ctx, db, times: 3)
            let consumer = try RunningConsumer.start(ctx, batchSize: 1)
            #expect(await eventually { consumer.service.totals.applied + consumer.service.totals.duplicates == rows * 3 })
            try await consumer.stop()
            #expect(consumer.service.totals.applied == rows)
            #expect(consumer.service.totals.duplicates == rows * 2)
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record") == 5)
            #expect(try await count(db, "SELECT count(*) AS n FROM payment_ledger") == 1)
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status <> 'COMPLETE'") == 0)
            #expect(try await db.query("SELECT status FROM wait_token WHERE user_id = $1", [.int(user.userId)]).single().string("status") == "EXPIRED")
        }
    }

    @Test("killed between the database commit and the offset commit, a restarted consumer applies nothing twice")
    func crashBeforeOffsetCommit() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 40)
            _ = try await produceOutboxRows(ctx, db)
            let first = try RunningConsumer.start(ctx, batchSize: 10, afterDatabaseCommit: { throw SimulatedCrash() })
            await #expect(throws: SimulatedCrash.self) { try await first.task.value }
            let appliedBeforeCrash = try await count(db, "SELECT count(*) AS n FROM booking_record")
            #expect(appliedBeforeCrash > 0)

            let second = try RunningConsumer.start(ctx, batchSize: 10)
            #expect(await eventually { (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 40 })
            #expect(await eventually { second.service.totals.duplicates >= appliedBeforeCrash })
            try await second.stop()
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record") == 40)
            #expect(second.service.totals.applied == 40 - appliedBeforeCrash)
        }
    }

    /// Offsets are committed asynchronously after each batch; a graceful stop must still
    /// leave every applied batch committed, so the next member starts after it.
    @Test("a consumer stopped gracefully leaves the offsets of every batch it applied committed")
    func gracefulStopCommitsEverything() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 40)
            _ = try await produceOutboxRows(ctx, db)
            let consumer = try RunningConsumer.start(ctx, group: "handover", batchSize: 8)
            #expect(await eventually { consumer.service.totals.applied == 40 })
            try await consumer.stop()

            let reader = try KafkaConsumer(configuration: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers),
                                           groupID: "handover", logger: Logger(label: "offset-reader"))
            defer { reader.close() }
            let committed = try reader.committed((0..<16).map { TopicPartition(topic: "BOOK_SAVE", partition: Int32($0)) })
            // Offsets start at 0 in every partition: the committed offsets add up to the
            // number of messages the group is done with.
            #expect(committed.values.filter { $0 >= 0 }.reduce(0, +) == 40, "\(committed)")
        }
    }

    /// The Kafka thread parses a batch and renders its parameters while the database thread
    /// applies the batch before. It used to parse only after that batch had settled, so the
    /// database sat idle through every parse (about a seventh of the consumer's throughput).
    @Test("the next batch is parsed while the database thread is still applying the one before")
    func parsesWhileTheDatabaseApplies() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 6)
            _ = try await produceOutboxRows(ctx, db)
            let probe = PipelineProbe()
            let consumer = try RunningConsumer.start(ctx, group: "pipeline", batchSize: 1,
                                                     beforeDatabaseApply: { probe.holdFirstApply() },
                                                     afterPrepare: { probe.parsed($0) })
            // The first batch holds the database thread; the second must be parsed meanwhile.
            // Timed from the hold, not from the start: joining the group took longer than
            // the whole 15 s in CI's parallel phase once.
            #expect(await eventually(timeout: .seconds(90)) { probe.applying }, "the first batch never reached the database thread")
            let overlapped = await eventually(timeout: .seconds(15)) { probe.parsedMessages >= 2 }
            probe.release()
            #expect(overlapped, "only \(probe.parsedMessages) message(s) parsed while the first batch was being applied")
            #expect(await eventually { consumer.service.totals.applied == 6 })
            try await consumer.stop()
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status <> 'COMPLETE'") == 0)
        }
    }

    @Test("two consumers in one group share the partitions and together apply every effect once")
    func twoMembers() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 300)
            let a = try RunningConsumer.start(ctx, batchSize: 16)
            let b = try RunningConsumer.start(ctx, batchSize: 16)
            // Let both join before traffic so the partitions are split.
            #expect(await eventually(timeout: .seconds(20)) { a.service.totals.applied >= 0 && b.service.totals.applied >= 0 })
            try await Task.sleep(for: .seconds(4))
            _ = try await produceOutboxRows(ctx, db)
            #expect(await eventually(timeout: .seconds(60)) { (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 300 })
            try await a.stop()
            try await b.stop()
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record") == 300)
            #expect(a.service.totals.applied + b.service.totals.applied == 300)
            #expect(a.service.totals.applied > 0 && b.service.totals.applied > 0, "a=\(a.service.totals) b=\(b.service.totals)")
        }
    }

    @Test("a member the group gives no partitions says so, with the fix, and takes the partitions over when the working member leaves")
    func standbyMember() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let topics = [EventType.bookSave, EventType.paymentSave]  // what a consumer subscribes to by default
            // One partition per topic: the range assignor gives every topic's partition to
            // the same member, so the second member stands by.
            for topic in topics { try await ctx.broker!.createTopic(topic, partitions: 1) }
            let standbyWarning = "no partitions assigned: this member stands by, and takes partitions over when another member of the group leaves"
            let logsA = LogCapture(), logsB = LogCapture()
            let a = try RunningConsumer.start(ctx, logs: logsA)
            #expect(await eventually(timeout: .seconds(30)) { a.service.assignedPartitions == topics.count })
            let b = try RunningConsumer.start(ctx, logs: logsB)
            #expect(await eventually(timeout: .seconds(30)) { !logsA.lines(standbyWarning).isEmpty || !logsB.lines(standbyWarning).isEmpty },
                    "the member without partitions says so")
            let (standby, working) = logsA.lines(standbyWarning).isEmpty ? (b, a) : (a, b)
            let warning = (logsA.lines(standbyWarning) + logsB.lines(standbyWarning)).first
            #expect(warning?.metadata["fix"]?.contains("partitions") == true && warning?.metadata["group"] == "test-consumers")
            #expect(await eventually { working.service.assignedPartitions == topics.count && standby.service.assignedPartitions == 0 })

            _ = try await bookSeats(db, count: 20)
            try await working.stop()
            _ = try await produceOutboxRows(ctx, db)
            #expect(await eventually(timeout: .seconds(60)) { (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 20 },
                    "the standby took the partitions over")
            #expect(standby.service.assignedPartitions == topics.count)
            try await standby.stop()
        }
    }

    @Test("a poison message lands in the dead-letter topic with error headers, and the next message is processed")
    func poison() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 1)
            try await Self.sendRaw(ctx, [
                ("BOOK:x", "{not json", [("outbox-id", "999"), ("outbox-type", "BOOK_SAVE")]),
                ("BOOK:y", "{}", [("outbox-type", "NO_SUCH_TYPE")]),
                ("BOOK:z", #"{"book":{"bookingId":1,"seatId":1,"userId":1,"price":1,"status":"RESERVED"},"waitToken":{"tokenId":1,"userId":1,"token":"t","status":"ACTIVE"},"outboxId":424242}"#,
                 [("outbox-type", "BOOK_SAVE")]),
            ])
            _ = try await produceOutboxRows(ctx, db)
            let consumer = try RunningConsumer.start(ctx, batchSize: 8)
            #expect(await eventually { (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 1 })
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.consumer.dlq"], count: 3)
            try await consumer.stop()
            #expect(dead.count == 3)
            let reasons = Set(dead.compactMap { $0.headerString("outbox-dlq-reason") })
            #expect(reasons == ["unparseable", "unknown_type", "missing_outbox_row"])
            #expect(dead.allSatisfy { $0.headerString("outbox-dlq-original-topic") == "BOOK_SAVE" && $0.headerString("outbox-dlq-error") != nil })
            #expect(consumer.service.totals.deadLettered == 3)
            #expect(consumer.service.totals.applied == 1)
        }
    }

    @Test("a batch the database refuses is redone message by message: only the message at fault is dead-lettered; copies in one batch apply once")
    func databaseRefusesOneMessage() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 10)
            _ = try await produceOutboxRows(ctx, db, times: 2)
            let badID = try await Self.sendRefusedMessage(ctx, db)

            let consumer = try RunningConsumer.start(ctx, batchSize: 64)
            #expect(await eventually { consumer.service.totals.applied + consumer.service.totals.duplicates + consumer.service.totals.deadLettered == 21 })
            try await consumer.stop()
            #expect(consumer.service.totals.applied == 10)
            #expect(consumer.service.totals.duplicates == 10)
            #expect(consumer.service.totals.deadLettered == 1)
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record") == 10)
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'") == 10)
            #expect(try await db.query("SELECT status FROM outbox WHERE outbox_id = $1", [.int(badID)]).single().string("status") == "INIT")
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.consumer.dlq"], count: 1)
            #expect(dead.first?.headerString("outbox-dlq-reason") == "rejected_by_database")
            #expect(dead.first?.headerString("outbox-id") == String(badID))
        }
    }

    @Test("payloads with quotes, backslashes, commas, braces, the word NULL and non-ASCII text are stored as sent, in a batch")
    func awkwardPayloadsStoredAsSent() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let notes = [#"say \"hi\""#, #"C:\\path\\x"#, "a,b {c} NULL", "Zoë 🎫 日本", "NULL"]
            var sent: [Int64: String] = [:]
            let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers),
                                             logger: Logger(label: "t"), onDelivery: { _ in })
            for (n, note) in notes.enumerated() {
                let payload = #"{"book":{"bookingId":\#(n + 1),"seatId":1,"userId":1,"price":1,"status":"RESERVED","note":"\#(note)"},"#
                    + #""waitToken":{"tokenId":1,"userId":1,"token":"t","status":"ACTIVE"}}"#
                let id = try await db.query("INSERT INTO outbox (topic, mq_key, type, payload) VALUES ('BOOK_SAVE', 'BOOK:q', 'BOOK_SAVE', $1::jsonb) RETURNING outbox_id",
                                            [.text(payload)]).single().int64("outbox_id")
                sent[id] = payload
                _ = try await producer.send(topic: "BOOK_SAVE", key: Array("BOOK:q".utf8), value: Array(payload.utf8),
                                            headers: [("outbox-id", Array(String(id).utf8)), ("outbox-type", Array("BOOK_SAVE".utf8))])
            }
            await producer.close()
            let consumer = try RunningConsumer.start(ctx, batchSize: 64)
            #expect(await eventually { consumer.service.totals.applied == notes.count })
            try await consumer.stop()
            #expect(consumer.service.totals.deadLettered == 0)
            for (id, payload) in sent {
                let stored = try await db.query("SELECT payload = $2::jsonb AS same FROM booking_record WHERE outbox_id = $1",
                                                [.int(id), .text(payload)]).single().bool("same")
                #expect(stored, "row \(id) not stored as sent: \(payload)")
            }
        }
    }

    @Test("the relay's outbox-id header wins over a stale outboxId in the payload: the effect goes to the header's row only")
    func headerIDWinsOverPayload() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 2)
            let ids = try await db.query("SELECT outbox_id FROM outbox ORDER BY outbox_id").rows.map { try $0.int64("outbox_id") }
            try #require(ids.count == 2)
            let (a, b) = (ids[0], ids[1])
            // A's own payload, but naming B: what a payload built before a copy or a re-key looks like.
            let row = try await db.query("""
                SELECT mq_key, (payload->'book'->>'bookingId')::bigint AS booking_id,
                       jsonb_set(payload, '{outboxId}', to_jsonb($2::bigint))::text AS stale
                FROM outbox WHERE outbox_id = $1
                """, [.int(a), .int(b)]).single()
            let bookingA = try row.int64("booking_id")
            try await Self.sendRaw(ctx, [(try row.string("mq_key"), try row.string("stale"), [("outbox-id", String(a)), ("outbox-type", "BOOK_SAVE")])])

            let consumer = try RunningConsumer.start(ctx, batchSize: 8)
            #expect(await eventually { consumer.service.totals.applied + consumer.service.totals.deadLettered >= 1 })
            try await consumer.stop()
            #expect(consumer.service.totals.applied == 1 && consumer.service.totals.deadLettered == 0)
            func status(_ id: Int64) async throws -> String {
                try await db.query("SELECT status FROM outbox WHERE outbox_id = $1", [.int(id)]).single().string("status")
            }
            #expect(try await status(a) == "COMPLETE", "the header's row did not get its effect")
            #expect(try await status(b) == "INIT", "the payload's stale id took the effect")
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record WHERE outbox_id = \(a) AND booking_id = \(bookingA)") == 1)
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record WHERE outbox_id = \(b)") == 0)
        }
    }

    @Test("a message that arrives before its outbox row is visible waits for it instead of being dead-lettered")
    func rowNotYetVisible() async throws {
        try await withTestContext(dedicatedCluster: true) { ctx in
            let db = try await ctx.migrated()
            // The row is inserted in a transaction kept open while the consumer already holds
            // its message: what a consumer sees when the walsender sent the commit a moment
            // before the committing backend made it visible.
            let writer = try await ctx.connect()
            try await writer.query("BEGIN")
            let id = try await writer.query("""
                INSERT INTO outbox (topic, mq_key, type, payload) VALUES ('BOOK_SAVE', 'BOOK:late', 'BOOK_SAVE', '{}') RETURNING outbox_id
                """).single().int64("outbox_id")
            try await Self.sendRaw(ctx, [("BOOK:late", Self.bookPayload(outboxID: id), [("outbox-id", String(id)), ("outbox-type", "BOOK_SAVE")])])
            // The message must still count as young when the consumer reads it: joining the
            // group alone can take seconds here, more than the default window.
            let consumer = try RunningConsumer.start(ctx, batchSize: 8, configure: { $0.missingRowWindow = .seconds(600) })
            #expect(await eventually { consumer.service.visibilityRetries > 0 }, "the consumer never met the invisible row")
            try await writer.query("COMMIT")
            #expect(await eventually { consumer.service.totals.applied == 1 })
            try await consumer.stop()
            #expect(consumer.service.totals.deadLettered == 0)
            #expect(try await db.query("SELECT status FROM outbox WHERE outbox_id = $1", [.int(id)]).single().string("status") == "COMPLETE")
        }
    }

    /// A batch's offsets are committed only after its dead letters are acknowledged: while
    /// the dead-letter topic refuses them (an invalid name here), the batch stays
    /// uncommitted, and the next member of the group sends them instead.
    @Test("a dead letter the broker refuses holds the batch's offsets; the next group member dead-letters it, once")
    func deadLetterRefusedHoldsOffsets() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 1)
            // The poison message goes first, on the valid row's key: one partition, so one
            // fetch brings both and they form one batch. On different partitions (a CI run
            // had "BOOK:x") the second partition's data can come after the batch's 5 ms
            // wait, the poison then forms a batch alone, and the valid row waits behind its
            // refused dead letter: the test's premise, not the consumer, failed there.
            let key = try await db.query("SELECT mq_key FROM outbox").single().string("mq_key")
            try await Self.sendRaw(ctx, [(key, "{not json", [("outbox-id", "999"), ("outbox-type", "BOOK_SAVE")])])
            _ = try await produceOutboxRows(ctx, db)
            let refused = try RunningConsumer.start(ctx, group: "dlq-refused", batchSize: 8, configure: { $0.deadLetterTopic = "not a topic!" })
            #expect(await eventually { (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 1 })
            try await Task.sleep(for: .seconds(1))  // a few refused sends and retries
            #expect(refused.service.totals.deadLettered == 0)
            // Held offsets hold every later batch too: the consumer says so (/readyz 503).
            #expect(await eventually { refused.service.stalledReason?.contains("the dead-letter topic not a topic! refused") == true },
                    "\(refused.service.stalledReason ?? "not stalled")")
            await #expect(throws: (any Error).self, "a stop with the dead letter still refused must fail, not pretend") {
                try await refused.stop()
            }
            let next = try RunningConsumer.start(ctx, group: "dlq-refused", batchSize: 8)
            #expect(await eventually { next.service.totals.deadLettered == 1 })
            #expect(next.service.stalledReason == nil)
            try await next.stop()
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.consumer.dlq"], count: 10,
                                              idle: .seconds(3))
            #expect(dead.count == 1 && dead.first?.headerString("outbox-dlq-reason") == "unparseable", "\(dead.map { $0.headers })")
            #expect(next.service.totals.duplicates == 1, "the batch's valid message, redelivered, is a counted duplicate")
        }
    }

    /// A batch the database keeps refusing (here its effect table is gone) is retried with
    /// its offsets held, so every later batch waits: past a few failures the consumer reports
    /// itself stalled, with the error, and ready again once a batch goes through.
    @Test("a batch the database keeps refusing marks the consumer stalled, with the error; it is ready again once the batch applies")
    func databaseStallIsReported() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 3)
            try await db.query("ALTER TABLE booking_record RENAME TO booking_record_away")
            _ = try await produceOutboxRows(ctx, db)
            let logs = LogCapture(level: .notice)
            let consumer = try RunningConsumer.start(ctx, batchSize: 8, logs: logs)
            #expect(await eventually { consumer.service.stalledReason?.contains("applying a batch failed") == true },
                    "\(consumer.service.stalledReason ?? "not stalled")")
            let reason = consumer.service.stalledReason ?? ""
            #expect(reason.contains("relation \"booking_record\" does not exist [SQLSTATE 42P01]"), "the reason names the failure: \(reason)")
            #expect(reason.contains("Fix: run `outbox-relay migrate`"), "the reason names the fix: \(reason)")
            #expect(!reason.contains("\n") && !reason.contains("QUERY"), "one line for /readyz, without the statement: \(reason)")
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'") == 0)
            try await db.query("ALTER TABLE booking_record_away RENAME TO booking_record")
            #expect(await eventually { consumer.service.totals.applied == 3 })
            #expect(consumer.service.stalledReason == nil)
            try await consumer.stop()
            // One stall, one error line: every retry logged at error would page an operator
            // for each retry of a PostgreSQL restart that heals by itself.
            let retries = logs.all.filter { $0.metadata["retry_in"] != nil }
            #expect(retries.count >= 3, "\(retries.map(\.message))")
            #expect(retries.filter { $0.level >= .error }.map(\.message) == ["applying batches keeps failing; stalled (readyz 503), retrying"],
                    "\(retries.map { "\($0.level) \($0.message)" })")
            #expect(logs.lines("applying batches again; no longer stalled").count == 1)
        }
    }

    /// Replaying old messages whose rows are gone (offsets reset, retention) used to wait the
    /// ~1.3 s of visibility retries on every batch, dead-lettering ~150 messages/s.
    @Test("messages older than missing-row-window whose rows are missing are dead-lettered at once, in batch order")
    func oldMissingRowsArePoisonAtOnce() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let missing = (1...20).map { 900_000 + Int64($0) }
            try await Self.sendRaw(ctx, missing.map { id in
                ("BOOK:gone", Self.bookPayload(outboxID: id), [("outbox-id", String(id)), ("outbox-type", "BOOK_SAVE")])
            })
            // A zero window makes every message "old": their rows cannot still be on their way.
            let logs = LogCapture()
            let consumer = try RunningConsumer.start(ctx, batchSize: 64, configure: { $0.missingRowWindow = .zero }, logs: logs)
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.consumer.dlq"], count: missing.count)
            #expect(await eventually { consumer.service.totals.deadLettered == missing.count })
            try await consumer.stop()
            #expect(consumer.service.visibilityRetries == 0, "waited for rows that were produced long ago")
            #expect(dead.compactMap { $0.headerString("outbox-id") } == missing.map(String.init), "dead letters out of batch order")
            #expect(dead.allSatisfy { $0.headerString("outbox-dlq-reason") == "missing_outbox_row" })
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record") == 0)
            // One warning per batch, not per message; together they count every dead letter.
            let warnings = logs.lines("poison messages dead-lettered")
            #expect(!warnings.isEmpty && warnings.count < missing.count, "\(warnings.count) warnings for \(missing.count) dead letters")
            #expect(warnings.compactMap { Int($0.metadata["messages"] ?? "") }.reduce(0, +) == missing.count)
            #expect(warnings.allSatisfy { $0.metadata["reason"]?.hasPrefix("missing_outbox_row=") == true && $0.metadata["topics"]?.hasPrefix("BOOK_SAVE/") == true },
                    "\(warnings.map(\.metadata))")
            #expect(logs.lines("poison message dead-lettered").isEmpty)
        }
    }

    /// Retention deletes COMPLETE rows; the effect tables keep theirs. A consumer group that
    /// replays the topic afterwards (a new group, offsets reset to the earliest) used to
    /// dead-letter every such message as missing_outbox_row: thousands of alarms for effects
    /// that were applied long ago. The effect ledger says they were: they are duplicates.
    @Test("a replay after retention deleted the rows: messages whose effects were applied are duplicates, not dead letters, in batches and one by one")
    func replayAfterRetentionIsDuplicates() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await Self.bookSeatsAndPayOne(db, count: 6)
            let rows = try await produceOutboxRows(ctx, db)
            let first = try RunningConsumer.start(ctx, group: "applied-first", batchSize: 64)
            #expect(await eventually { first.service.totals.applied == rows })
            try await first.stop()
            // What retention does: the COMPLETE rows go, the effects stay.
            try await db.query("DELETE FROM outbox WHERE status = 'COMPLETE'")
            let badID = try await Self.sendRefusedMessage(ctx, db)
            // A message whose row never existed stays poison.
            let neverID: Int64 = 900_001
            try await Self.sendRaw(ctx, [("BOOK:gone", Self.bookPayload(outboxID: neverID), [("outbox-id", String(neverID)), ("outbox-type", "BOOK_SAVE")])])
            // Replayed 64 at a time, the messages share a batch the database refuses, so they
            // take the one-by-one path; one at a time, each is a set-based batch of its own.
            for (group, batchSize) in [("replay-64", 64), ("replay-1", 1)] {
                let replay = try RunningConsumer.start(ctx, group: group, batchSize: batchSize, configure: { $0.missingRowWindow = .zero })
                #expect(await eventually { replay.service.totals.duplicates + replay.service.totals.deadLettered == rows + 2 }, "\(group)")
                try await replay.stop()
                #expect(replay.service.totals.duplicates == rows, "\(group): applied effects replayed after retention")
                #expect(replay.service.totals.deadLettered == 2, "\(group): the refused message and the row that never existed")
                #expect(replay.service.totals.applied == 0, "\(group)")
            }
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.consumer.dlq"], count: 4)
            #expect(dead.compactMap { $0.headerString("outbox-dlq-reason") }.sorted()
                    == ["missing_outbox_row", "missing_outbox_row", "rejected_by_database", "rejected_by_database"])
            #expect(Set(dead.compactMap { $0.headerString("outbox-id") }) == [String(badID), String(neverID)])
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record") == 6)
            #expect(try await count(db, "SELECT count(*) AS n FROM payment_ledger") == 1)
        }
    }

    /// SIGTERM's bound holds for the consumers too: with its database connection frozen
    /// mid-batch, the stop cannot apply the batch in hand, and only the watchdog ends it.
    @Test("a stop held by a frozen database ends at drain-timeout through the watchdog, once")
    func stopWatchdogFiresWhenDatabaseFreezes() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await bookSeats(db, count: 2)
            let overruns = OverrunRecorder()
            let applies = Atomic<Int>(0)
            let consumer = try RunningConsumer.start(ctx, batchSize: 8, beforeDatabaseApply: { applies.add(1, ordering: .relaxed) },
                                                     configure: { $0.drainTimeout = .seconds(2) },
                                                     onStopOverrun: overruns.report)
            _ = try await produceOutboxRows(ctx, db)
            #expect(await eventually { consumer.service.totals.applied == 2 })
            let backend = try #require(try await db.query(
                // This test's database only: parallel tests run consumers with the same name.
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() AND backend_type = 'client backend'",
                [.text(consumer.service.configuration.applicationName)]).rows.first?.int64("pid"))
            kill(pid_t(backend), SIGSTOP)
            defer { kill(pid_t(backend), SIGCONT) }
            _ = try await produceOutboxRows(ctx, db)  // redelivered copies: a batch that now waits on the frozen backend
            #expect(await eventually { applies.load(ordering: .relaxed) >= 2 }, "the second batch never reached the database thread")
            // Thawed, the stop finishes: the held batch settles (its copies are duplicates; a copy
            // not yet polled at the stop stays for the next member).
            try await overruns.expectStopEndedByWatchdog(drainTimeout: .seconds(2), stop: { consumer.service.stop() },
                                                         thaw: { kill(pid_t(backend), SIGCONT) }, finished: { try await consumer.task.value })
            #expect(consumer.service.totals.duplicates >= 1 && consumer.service.totals.applied == 2)
        }
    }

    /// Sends hand-made messages to BOOK_SAVE, in order, as a relay would (or, for poison,
    /// would not) and waits for every acknowledgement. Headers are name/text pairs.
    /// Books `count` seats and pays for the first user's booking; returns that user.
    static func bookSeatsAndPayOne(_ db: PGConnection, count: Int) async throws -> DomainSeed.User {
        let seed = try await bookSeats(db, count: count)
        let user = seed.users[0]
        let booking = try await db.query("SELECT booking_id FROM booking WHERE user_id = $1", [.int(user.userId)]).single().int64("booking_id")
        _ = try await BookingFacade().pay(on: db, bookingId: booking, userId: user.userId, token: user.token)
        return user
    }

    /// A message for a real INIT row whose JSON Swift's decoder accepts but jsonb refuses
    /// (\u0000): the database rejects its batch. Returns the row's id.
    static func sendRefusedMessage(_ ctx: TestContext, _ db: PGConnection) async throws -> Int64 {
        let badID = try await db.query("""
            INSERT INTO outbox (topic, mq_key, type, payload) VALUES ('BOOK_SAVE', 'BOOK:bad', 'BOOK_SAVE', '{}') RETURNING outbox_id
            """).single().int64("outbox_id")
        let bad = #"{"book":{"bookingId":1,"seatId":1,"userId":1,"price":1,"status":"RES\u0000"},"# +
            #""waitToken":{"tokenId":1,"userId":1,"token":"t","status":"ACTIVE"},"outboxId":\#(badID)}"#
        try await sendRaw(ctx, [("BOOK:bad", bad, [("outbox-id", String(badID)), ("outbox-type", "BOOK_SAVE")])])
        return badID
    }

    static func sendRaw(_ ctx: TestContext, _ messages: [(key: String, value: String, headers: [(String, String)])]) async throws {
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers),
                                         logger: Logger(label: "t"), onDelivery: { _ in })
        let records = messages.map { message in
            OutgoingRecord(topic: "BOOK_SAVE", key: Array(message.key.utf8), value: Array(message.value.utf8),
                           headers: message.headers.map { ($0.0, Array($0.1.utf8)) })
        }
        let results = await producer.sendInOrder(records)
        await producer.close()
        for result in results { _ = try result.get() }
    }

    static func bookPayload(outboxID: Int64) -> String {
        #"{"book":{"bookingId":1,"seatId":1,"userId":1,"price":1,"status":"RESERVED"},"# +
            #""waitToken":{"tokenId":1,"userId":1,"token":"t","status":"ACTIVE"},"outboxId":\#(outboxID)}"#
    }
}

/// Holds the consumer's first database apply until released, and counts parsed messages.
private final class PipelineProbe: Sendable {
    private let state = Mutex<(applies: Int, parsed: Int)>((0, 0))
    private let gate = DispatchSemaphore(value: 0)

    var parsedMessages: Int { state.withLock { $0.parsed } }
    /// The database thread has reached its first batch.
    var applying: Bool { state.withLock { $0.applies > 0 } }
    func parsed(_ messages: Int) { state.withLock { $0.parsed += messages } }
    func release() { gate.signal() }

    /// Blocks the database thread on its first batch (until `release`), never after.
    func holdFirstApply() {
        let first = state.withLock { state -> Bool in
            state.applies += 1
            return state.applies == 1
        }
        if first { gate.wait() }
    }
}
