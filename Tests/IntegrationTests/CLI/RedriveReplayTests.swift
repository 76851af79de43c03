import Foundation
import KafkaClient
import PostgresClient
import Relay
import RelayCore
import Schema
import Testing

/// `outbox-relay redrive` and `replay` (issue 31, item 3), run as the real binary against a
/// real PostgreSQL, Tansu and, where it matters, a relay and consumers running meanwhile.
@Suite("Redrive and replay")
struct RedriveReplayTests {
    /// status, attempts and last_error of every row, in id order: what "changes nothing" compares.
    func tableState(_ db: PGConnection) async throws -> [String] {
        try await db.query("SELECT outbox_id, status, attempts, COALESCE(last_error, '-') AS e FROM outbox ORDER BY outbox_id").rows.map {
            "\(try $0.int64("outbox_id")) \(try $0.string("status")) \(try $0.int("attempts")) \(try $0.string("e"))"
        }
    }

    /// Inserts `count` DEAD rows of `topic` over `keys` keys, as the dead-letter path leaves them.
    func insertDead(_ db: PGConnection, topic: String, count: Int, keys: Int, reason: String) async throws {
        try await db.query("""
            INSERT INTO outbox (topic, mq_key, type, payload, status, attempts, last_error)
            SELECT $1, 'K' || (g % $3), 'T', jsonb_build_object('n', g), 'DEAD', 10, $4 FROM generate_series(1, $2) g
            """, [.text(topic), .int(count), .int(keys), .text(reason)])
    }

    func ids(_ messages: [KafkaMessage]) -> [Int64] { messages.compactMap { $0.headerString("outbox-id").flatMap { Int64($0) } } }

    @Test("redrive --dry-run lists the DEAD rows per topic and reason, and the first rows, and changes nothing")
    func dryRun() async throws {
        try await withTestContext(broker: false) { ctx in
            let db = try await ctx.migrated()
            try await insertDead(db, topic: "BOOK_SAVE", count: 3, keys: 2, reason: "message_too_large: the record is about 2000000 bytes")
            try await insertDead(db, topic: "ORDER_PLACED", count: 2, keys: 2, reason: "topic_not_allowed: not in topic-allow-list")
            try await db.query("INSERT INTO outbox (topic, mq_key, type, payload, status) VALUES ('BOOK_SAVE', 'K9', 'T', '{}', 'COMPLETE')")
            let before = try await tableState(db)
            let result = try await runCLI(["redrive", "--database-url", ctx.databaseURL, "--topic", "BOOK_SAVE", "--dry-run"])
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("3 rows match"), "\(result.output)")
            #expect(result.output.contains("topic BOOK_SAVE status DEAD reason message_too_large: 3 rows (outbox_id 1..3)"), "\(result.output)")
            #expect(!result.output.contains("ORDER_PLACED") && !result.output.contains("COMPLETE"), "\(result.output)")
            #expect(result.output.contains("  1 BOOK_SAVE key K1 type T DEAD"), "\(result.output)")
            #expect(try await tableState(db) == before)
        }
    }

    @Test("bad selectors exit 64 with the fix, before connecting")
    func badSelectors() async throws {
        let url = "postgres://relay@127.0.0.1:1/app"  // nothing listens: a connection attempt would exit 69
        for (arguments, words) in [
            (["redrive"], "no rows are selected"),
            (["replay", "--topic", "BOOK SAVE"], "is not a topic name"),
            (["redrive", "--created-after", "yesterday"], "RFC 3339"),
            (["replay", "--all", "--type", "T"], "cannot be combined"),
            (["redrive", "--all", "--limit", "0"], "--limit"),
            (["replay", "--all", "--run-id", "two words"], "--run-id"),
            (["redrive", "--all", "--send-timeout", "soon"], "--send-timeout"),
        ] {
            let result = try await runCLI(arguments + ["--database-url", url])
            #expect(result.status == 64, "\(arguments): \(result.output)")
            #expect(result.output.contains(words) && result.output.contains("Fix: "), "\(arguments): \(result.output)")
        }
    }

    @Test("redrive publishes one topic's DEAD rows in per-key order, resets them to INIT, leaves other DEAD rows alone, resumes, while the relay streams")
    func redriveWithRelayRunning() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: db)
            // The relay's allow-list refuses PAYMENT_SAVE and ORDER_PLACED: their rows go DEAD
            // (topic_not_allowed), as after a misconfiguration.
            let relay = try RunningRelay.start(ctx, configure: { $0.router = try! TopicRouter(allowList: ["BOOK_SAVE"]) })
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertBookEvents(db, rows: 24, keys: 5, seed: 0, topic: "PAYMENT_SAVE", type: "PAYMENT_SAVE")
            try await insertBookEvents(db, rows: 6, keys: 3, seed: 0, topic: "ORDER_PLACED", type: "ORDER_PLACED")
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'DEAD'")) == 30
            })
            // The fix: the command's settings have no allow-list. BOOK_SAVE rows keep flowing
            // through the relay meanwhile.
            let writer = Task {
                for seed in 1...20 {
                    try await insertBookEvents(db, rows: 5, keys: 4, seed: seed)
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let common = ["redrive", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                          "--slot", ctx.slotName, "--topic", "PAYMENT_SAVE", "--batch-size", "4"]
            let first = try await runCLI(common + ["--limit", "10"])
            #expect(first.status == 0, "\(first.output)")
            #expect(first.output.contains("redrive batch 1: 4 rows"), "progress per batch: \(first.output)")
            #expect(first.output.contains("--limit 10 reached"), "\(first.output)")
            let resume = try #require(first.output.components(separatedBy: "run again with --after-id ").last?
                .prefix { $0.isNumber }).description
            let second = try await runCLI(common + ["--after-id", resume])
            #expect(second.status == 0, "\(second.output)")
            #expect(second.output.contains("redrive done: published 14, refused 0, moved to INIT 14"), "\(second.output)")
            try await writer.value

            let redriven = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["PAYMENT_SAVE"], count: 24, idle: .seconds(3))
            #expect(redriven.count == 24)
            #expect(Set(ids(redriven)).count == 24, "each DEAD row once")
            for key in Set(redriven.map(\.keyString)) {
                let keyIDs = ids(redriven.filter { $0.keyString == key })
                #expect(keyIDs == keyIDs.sorted(), "key \(key) in outbox_id order: \(keyIDs)")
            }
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE topic = 'PAYMENT_SAVE' AND (status <> 'INIT' OR attempts <> 0 OR last_error IS NOT NULL)") == 0)
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE topic = 'ORDER_PLACED' AND status = 'DEAD' AND last_error LIKE 'topic_not_allowed%'") == 6)
            let again = try await runCLI(common)
            #expect(again.output.contains("redrive done: published 0"), "nothing DEAD is left to move: \(again.output)")

            // The relay's own stream lost and duplicated nothing meanwhile.
            // Past the last insert (not the last change: the redrive's UPDATEs are not
            // streamed, and an idle slot moves past them only with the server's keepalives).
            let lastInsert = try await db.query("""
                SELECT max(lsn)::text AS lsn FROM pg_logical_slot_peek_changes($1, NULL, NULL) WHERE data LIKE 'table public.outbox: INSERT:%'
                """, [.text(oracle.slot)]).single().lsn("lsn")
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await slotConfirmedLSN(db, slot: ctx.slotName)).flatMap { $0 }.map { $0 >= lastInsert } ?? false
            })
            let bookIDs = Set(try await db.query("SELECT outbox_id FROM outbox WHERE topic = 'BOOK_SAVE'").rows.map { try $0.int64("outbox_id") })
            let committed = try await oracle.committed(on: db).filter { bookIDs.contains($0.id) }
            let streamed = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: .max, idle: .seconds(3))
            let check = DeliveryCheck(committed: committed, messages: streamed)
            #expect(check.isClean && check.duplicates == 0 && check.committed == 100, "\(check)")
            try await relay.stop()
            try await oracle.drop(on: db)
        }
    }

    @Test("replay marks every record with its run id, keeps outbox_id order, changes no status, and the consumers absorb it, while the relay streams")
    func replayAbsorbedByConsumers() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: db)
            let relay = try RunningRelay.start(ctx)
            let consumer = try RunningConsumer.start(ctx)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertBookEvents(db, rows: 40, keys: 7, seed: 0)
            #expect(await eventually(timeout: .seconds(90)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 40
            })
            // More rows flow while the replay runs; its open range takes those committed by
            // the time a batch is read, and waits for the stream to have published them first.
            let writer = Task {
                for seed in 1...10 {
                    try await insertBookEvents(db, rows: 4, keys: 7, seed: seed * 1_000)
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let result = try await runCLI(["replay", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                                           "--slot", ctx.slotName, "--topic", "BOOK_SAVE", "--batch-size", "7", "--run-id", "incident-4711"])
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("replay batch 1: 7 rows"), "\(result.output)")
            try await writer.value
            let total = 80
            #expect(await eventually(timeout: .seconds(90)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == total
            })

            let (check, messages) = try await checkDelivery(db, oracle: oracle, bootstrapServers: ctx.bootstrapServers)
            let replayed = messages.filter { $0.header("outbox-replay") != nil }
            #expect(replayed.count >= 40, "the 40 rows before it at least")
            #expect(replayed.allSatisfy { $0.headerString("outbox-replay") == "incident-4711" })
            #expect(result.output.contains("replay done: published \(replayed.count), refused 0"), "\(result.output)")
            for partition in Set(replayed.map(\.partition)) {
                let order = ids(replayed.filter { $0.partition == partition })
                #expect(order == order.sorted(), "partition \(partition) in outbox_id order: \(order)")
            }
            // First deliveries complete and in commit order; the only duplicates are the replay's.
            #expect(check.isClean && check.committed == total, "\(check)")
            #expect(check.duplicates == replayed.count, "\(check)")
            // The consumers applied every effect once and counted the replayed copies as duplicates.
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record") == total)
            #expect(await eventually(timeout: .seconds(60)) {
                consumer.service.totals.applied + consumer.service.totals.duplicates == total + replayed.count
            })
            #expect(consumer.service.totals.applied == total)
            try await consumer.stop()
            try await relay.stop()
            try await oracle.drop(on: db)
        }
    }

    @Test("a replay of rows still INIT with no relay on the slot stops with exit 69, the cause, the fix and the resume point")
    func replayWithoutRelay() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await insertBookEvents(db, rows: 3, keys: 3, seed: 0)
            let result = try await runCLI(["replay", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                                           "--slot", ctx.slotName, "--all"])
            #expect(result.status == 69, "\(result.output)")
            #expect(result.output.contains("slot \(ctx.slotName) does not exist") && result.output.contains("Fix: start the relay"), "\(result.output)")
            #expect(result.output.contains("--after-id 0"), "\(result.output)")
            let nothing = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 1, timeout: .seconds(5))
            #expect(nothing.isEmpty, "nothing was sent ahead of the stream")
        }
    }

    @Test("both run as the least-privilege relay role (sql/roles.sql grants enough), never print its password; a row still refused stays DEAD")
    func relayRole() async throws {
        try await withTestContext { ctx in
            let admin = try await ctx.migrated()
            let suffix = ctx.databaseName
            let password = "pw-Secret-\(suffix)"
            let roles = try await ctx.leastPrivilegeRoles(on: admin, relayPassword: password)
            try await insertDead(admin, topic: "BOOK_SAVE", count: 4, keys: 2, reason: "topic_not_allowed: not in topic-allow-list")
            try await admin.query("UPDATE outbox SET status = 'COMPLETE' WHERE outbox_id = 4")
            let url = ctx.postgres.url(database: ctx.databaseName, user: roles.relayRole, password: password)
            let common = ["--database-url", url, "--kafka-bootstrap-servers", ctx.bootstrapServers, "--slot", ctx.slotName]
            // Still refused by the command's own settings: counted by reason, left DEAD.
            let refused = try await runCLI(["redrive", "--all", "--set", "topic-allow-list=OTHER"] + common)
            #expect(refused.status == 0, "\(refused.output)")
            #expect(refused.output.contains("redrive done: published 0, refused 3 (topic_not_allowed 3), moved to INIT 0"), "\(refused.output)")
            #expect(try await count(admin, "SELECT count(*) AS n FROM outbox WHERE status = 'DEAD'") == 3)
            let redrive = try await runCLI(["redrive", "--all"] + common)
            #expect(redrive.status == 0, "\(redrive.output)")
            #expect(redrive.output.contains("redrive done: published 3, refused 0, moved to INIT 3"), "\(redrive.output)")
            // Rows 1-3 are INIT now (a replay of them would wait for a relay); row 4 is COMPLETE.
            let replay = try await runCLI(["replay", "--from-id", "4"] + common)
            #expect(replay.status == 0, "\(replay.output)")
            #expect(replay.output.contains("replay done: published 1"), "\(replay.output)")
            #expect(!redrive.output.contains(password) && !replay.output.contains(password))
            #expect(try await count(admin, "SELECT count(*) AS n FROM outbox WHERE status = 'INIT' AND attempts = 0") == 3)
            try await ctx.drop(roles, on: admin)
        }
    }

    @Test("a broker frozen mid-redrive stops it with exit 69 and a resume point; the resumed run finishes, each key's rows in order")
    func brokerFrozenMidRun() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await insertDead(db, topic: "BOOK_SAVE", count: 4_000, keys: 16, reason: "topic_not_allowed: not in topic-allow-list")
            // Records not taken within 3 s fail (the command's default is a minute).
            let common = ["redrive", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                          "--slot", ctx.slotName, "--topic", "BOOK_SAVE", "--batch-size", "20", "--send-timeout", "3s"]
            let run = Task { try await runCLI(common) }
            #expect(await eventually(timeout: .seconds(30), every: .milliseconds(10)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'INIT'")) ?? 0 > 0
            })
            ctx.broker!.freeze()
            let stopped = try await run.value
            ctx.broker!.thaw()
            #expect(stopped.status == 69, "\(stopped.output.suffix(2_000))")
            #expect(stopped.output.contains("redrive stopped: Kafka did not take a record") && stopped.output.contains("Fix: "),
                    "\(stopped.output.suffix(2_000))")
            let resume = try #require(stopped.output.components(separatedBy: "then run the same command with --after-id ").dropFirst().last?
                .prefix { $0.isNumber }).description
            try #require(Int64(resume) != nil, "\(stopped.output.suffix(2_000))")
            let moved = try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'INIT'")
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'INIT' AND outbox_id > \(resume)") == 0,
                    "nothing after the resume point was flipped")
            #expect(moved < 4_000, "the freeze came before the end")

            let resumed = try await runCLI(common + ["--after-id", resume])
            #expect(resumed.status == 0, "\(resumed.output.suffix(2_000))")
            #expect(resumed.output.contains("moved to INIT \(4_000 - moved) in"), "\(resumed.output.suffix(500))")
            #expect(try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'INIT' AND attempts = 0") == 4_000)
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: .max, idle: .seconds(3))
            #expect(Set(ids(messages)).count == 4_000, "every row published at least once")
            for (key, keyMessages) in Dictionary(grouping: messages, by: \.keyString) {
                // Per key, the first deliveries follow outbox_id order (the rows re-sent after
                // the failed one come again after it).
                var seen = Set<Int64>()
                let order = ids(keyMessages).filter { seen.insert($0).inserted }
                #expect(order == order.sorted(), "key \(key): \(order.prefix(20))")
            }
        }
    }

    @Test("on a sharded database a replay of INIT rows waits for every shard's slot: a shard with no relay stops it (exit 69, naming that slot); with both it runs")
    func shardedReplayWaitsForEveryShard() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let migrated = try await runCLI(["migrate", "--database-url", ctx.databaseURL, "--slot", ctx.slotName, "--shards", "2"])
            #expect(migrated.status == 0, "\(migrated.output)")
            func startShard(_ text: String) throws -> RunningRelay {
                let shard = try ShardSpec.parse(text)
                return try RunningRelay.start(ctx, slot: shard.slotName(base: ctx.slotName), configure: {
                    $0.shard = shard
                    $0.publication = shard.publicationName(base: $0.publication)
                })
            }
            let first = try startShard("0/2")
            #expect(await eventually { first.service.health.current.state == .streaming })
            try await insertBookEvents(db, rows: 20, keys: 20, seed: 0)
            let command = ["replay", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                           "--slot", ctx.slotName, "--all", "--stream-wait", "5s"]
            let halfServed = try await runCLI(command)
            #expect(halfServed.status == 69, "\(halfServed.output)")
            #expect(halfServed.output.contains("slot \(ctx.slotName)_1 does not exist"), "\(halfServed.output)")
            let second = try startShard("1/2")
            #expect(await eventually { second.service.health.current.state == .streaming })
            // An idle shard relay confirms the server's position only now and then (about 10 s
            // measured here): the wait covers that.
            let served = try await runCLI(command.dropLast(2) + ["--stream-wait", "50s"])
            #expect(served.status == 0, "\(served.output)")
            #expect(served.output.contains("replay done: published 20"), "\(served.output)")
            try await first.stop()
            try await second.stop()
        }
    }
}
