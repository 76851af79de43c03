@testable import Consumers
import EphemeralServers
import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import Schema
@testable import Relay
import RelayCore
import Testing
import Threading

/// Issue 31 item 5: teams keep their own outbox in their own schema, and one relay, one
/// slot and one publication carry them all. Ids collide across tables (each has its own
/// sequence), so everything downstream must know the table, not only the id.
@Suite("Several outbox tables")
struct SeveralTablesTests {
    static let teamA = try! OutboxTable(parsing: "team_a.outbox")
    static let teamB = try! OutboxTable(parsing: "team_b.outbox")

    /// An outbox-shaped table in `schema` with its own id sequence (so its ids collide with
    /// public.outbox's). The shape as `migrate --schema` installs it is tested with that
    /// command; here the relay is under test.
    static func createOutbox(_ db: PGConnection, _ table: OutboxTable) async throws {
        try await db.query("CREATE SCHEMA IF NOT EXISTS \(quoteIdentifier(table.schema))")
        try await db.query("CREATE TABLE \(table.sql) (LIKE public.outbox INCLUDING ALL)")
        try await db.query("CREATE SEQUENCE \(quoteIdentifier(table.schema)).outbox_id_seq OWNED BY \(table.sql).outbox_id")
        try await db.query("ALTER TABLE \(table.sql) ALTER COLUMN outbox_id SET DEFAULT nextval('\(table.schema).outbox_id_seq')")
    }

    @Test("two outbox tables stream through one slot: each row once, with its table, in commit order per key; an unlisted table is not captured",
          arguments: [CaptureMode.stream, .notify])
    func twoTablesOneSlot(capture: CaptureMode) async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            for table in [Self.teamA, Self.teamB] { try await Self.createOutbox(db, table) }
            // team_b is published but not in outbox-tables: before several tables, any
            // schema's "outbox" was captured and went to public.outbox's consumers.
            try await db.query("ALTER PUBLICATION outbox_pub ADD TABLE \(Self.teamB.sql)")

            // A table missing from the publication stops the start with the fix.
            let refused = try RunningRelay.start(ctx, capture: capture) { $0.tables = [.default, Self.teamA] }
            let error = await #expect(throws: RelayError.self) { try await refused.task.value }
            #expect(error?.code == .publicationMisconfigured && "\(error!)".contains("team_a.outbox")
                    && "\(error!)".contains("migrate --schema team_a"), "\(String(describing: error))")
            #expect(try await db.query("SELECT count(*) AS n FROM pg_replication_slots WHERE slot_name = $1", [.text(ctx.slotName)])
                .single().int("n") == 0, "checked before the slot is created")

            try await db.query("ALTER PUBLICATION outbox_pub ADD TABLE \(Self.teamA.sql)")
            let relay = try RunningRelay.start(ctx, capture: capture) { $0.tables = [.default, Self.teamA] }
            #expect(await eventually { relay.service.health.current.state == .streaming })
            // One writer, so commit order is the order written; each transaction writes
            // the same keys to both tables, in turns that alternate which table goes first.
            var seq = 0
            for round in 0..<60 {
                try await db.query("BEGIN")
                for step in 0..<4 {
                    let table = (round + step) % 2 == 0 ? OutboxTable.default : Self.teamA
                    seq += 1
                    try await db.query("""
                        INSERT INTO \(table.sql) (topic, mq_key, type, payload)
                        VALUES ('BOOK_SAVE', $1, 'BOOK_SAVE', jsonb_build_object('seq', $2::int))
                        """, [.text("BOOK:\(round % 7)"), .int(seq)])
                }
                try await db.query("INSERT INTO \(Self.teamB.sql) (topic, mq_key, type, payload) VALUES ('BOOK_SAVE', 'BOOK:0', 'BOOK_SAVE', '{\"seq\": -1}')")
                try await db.query("COMMIT")
            }
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"],
                                                  count: seq + 1, timeout: .seconds(90), idle: .seconds(5))
            #expect(messages.count == seq, "every row of the two listed tables once, none of team_b")
            var seen: Set<String> = [], lastSeq: [String: Int] = [:], duplicates = 0, outOfOrder = 0
            for message in messages {
                let table = message.headerString("outbox-table") ?? "public.outbox"
                let id = message.headerString("outbox-id") ?? "?"
                if !seen.insert("\(table)/\(id)").inserted { duplicates += 1 }
                let payload = try JSONSerialization.jsonObject(with: Data(message.value)) as? [String: Any]
                let rowSeq = payload?["seq"] as? Int ?? -1
                #expect(rowSeq > 0, "a row of team_b.outbox (seq -1) was published")
                let key = String(decoding: message.key ?? [], as: UTF8.self)
                if let last = lastSeq[key], last >= rowSeq { outOfOrder += 1 }
                lastSeq[key] = rowSeq
            }
            #expect(duplicates == 0 && outOfOrder == 0)
            #expect(seen.filter { $0.hasPrefix("team_a.outbox/") }.count == seq / 2)
            #expect(seen.filter { $0.hasPrefix("public.outbox/") }.count == seq / 2)
            // Ids collide across the tables: the header is what tells them apart.
            #expect(seen.contains("team_a.outbox/1") && seen.contains("public.outbox/1"))
            try await relay.stop()
        }
    }

    @Test("end to end over two tables with colliding ids (migrate --schema's table): the relay carries both, the consumers complete every row of each with one effect per (table, id)")
    func endToEnd() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await OutboxTableMigration.install(Self.teamA, on: db)
            _ = try await ConsumerTests.bookSeatsAndPayOne(db, count: 5)
            try await db.query("""
                INSERT INTO team_a.outbox (topic, mq_key, type, payload)
                SELECT topic, mq_key, type, payload FROM public.outbox ORDER BY outbox_id
                """)
            let ids = try await db.query("""
                SELECT (SELECT array_agg(outbox_id ORDER BY outbox_id) FROM public.outbox)::text AS a,
                       (SELECT array_agg(outbox_id ORDER BY outbox_id) FROM team_a.outbox)::text AS b
                """).single()
            try #require(try ids.string("a") == ids.string("b"), "the tables' ids must collide")
            let relay = try RunningRelay.start(ctx) { $0.tables = [.default, Self.teamA] }
            let consumer = try RunningConsumer.start(ctx, configure: { $0.tables = [.default, Self.teamA] })
            #expect(await eventually(timeout: .seconds(90)) { consumer.service.totals.applied == 12 }, "\(consumer.service.totals)")
            try await ConsumerTablesTests.expectEveryRowAppliedOnce(db, rows: 6)
            try await consumer.stop()
            try await relay.stop()
        }
    }

    @Test("each table is swept on its own: a stuck row of team_a is re-sent from team_a and marked DEAD there, public.outbox's row of the same id stays")
    func sweptPerTable() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await Self.createOutbox(db, Self.teamA)
            for table in [OutboxTable.default, Self.teamA] {
                try await db.query("""
                    INSERT INTO \(table.sql) (outbox_id, topic, mq_key, type, payload, attempts, created_at)
                    VALUES (5, 'BOOK_SAVE', 'BOOK:1', 'BOOK_SAVE', '{"t": "\(table)"}', $1, now() - interval '1 hour')
                    """, [.int(table == .default ? 0 : 3)])
            }
            let (producers, configuration) = try SweeperTests().makeProducers(ctx)
            let sweepers = [OutboxTable.default, Self.teamA].map {
                Sweeper(policy: SweeperTests.fast, retention: nil, table: $0, configuration: configuration,
                        logger: Logger(label: "t"), metrics: RelayMetrics())
            }
            let teamResult = try await sweepers[1].resend([5], on: db, producers: producers)
            #expect(teamResult.dead == [5] && teamResult.resent.isEmpty)
            let publicResult = try await sweepers[0].resend([5], on: db, producers: producers)
            await runBlocking { producers.close(timeout: .seconds(5)) }
            #expect(publicResult.resent == [5] && publicResult.dead.isEmpty)
            #expect(try await db.query("SELECT status FROM team_a.outbox WHERE outbox_id = 5").single().string("status") == "DEAD")
            let publicRow = try await db.query("SELECT status, attempts FROM public.outbox WHERE outbox_id = 5").single()
            #expect(try publicRow.string("status") == "INIT" && publicRow.int("attempts") == 1)
            let resent = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 1)
            #expect(resent.first?.headerString("outbox-table") == nil, "public.outbox's re-send carries no table header")
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.dlq"], count: 1)
            #expect(dead.first?.headerString("outbox-table") == "team_a.outbox")
            #expect(dead.first.map { String(decoding: $0.value, as: UTF8.self).contains("team_a.outbox") } == true)
        }
    }

    @Test("retention runs per table: a publish-only row the stream published leaves its own table only")
    func retentionPerTable() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await Self.createOutbox(db, Self.teamA)
            try await db.query("ALTER PUBLICATION outbox_pub ADD TABLE \(Self.teamA.sql)")
            let relay = try RunningRelay.start(ctx, sweeper: SweeperTests.fast, retention: .seconds(1)) {
                $0.tables = [.default, Self.teamA]
            }
            #expect(await eventually { relay.service.health.current.state == .streaming })
            #expect(relay.service.sweepers.map(\.table) == [.default, Self.teamA])
            for table in [OutboxTable.default, Self.teamA] {
                try await db.query("""
                    INSERT INTO \(table.sql) (topic, mq_key, type, payload)
                    SELECT 'ORDER_PLACED', 'ORDER:' || g, 'ORDER_PLACED', '{}' FROM generate_series(1, 50) g
                    """)
            }
            #expect(await eventually(timeout: .seconds(60)) {
                let left = try? await db.query("""
                    SELECT (SELECT count(*) FROM public.outbox) + (SELECT count(*) FROM team_a.outbox) AS n
                    """).single().int("n")
                return left == 0
            }, "both tables emptied by their own sweeper's retention")
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["ORDER_PLACED"],
                                                  count: 101, timeout: .seconds(30), idle: .seconds(3))
            #expect(messages.count == 100, "each row published once, none re-sent")
            try await relay.stop()
        }
    }
}

@Suite("Several outbox tables: start-up shape check")
struct OutboxShapeAtStartTests {
    @Test("run, consume and replay refuse an outbox table of the wrong shape at start: exit 78, the column, the fix")
    func wrongShapeAtStart() async throws {
        try await withTestContext(broker: false) { ctx in
            let db = try await ctx.migrated()
            try await db.executeScript("""
                CREATE SCHEMA team_b;
                CREATE TABLE team_b.outbox (LIKE public.outbox INCLUDING ALL);
                ALTER TABLE team_b.outbox DROP COLUMN mq_key;
                """)
            let tables = "outbox-tables=public.outbox,team_b.outbox"
            // Kafka's port is closed: the shape is checked first, so the exit is 78, not 69.
            let kafka = "127.0.0.1:\(freeLoopbackPort())"
            for command in [["run", "--slot", ctx.slotName, "--http-port", "0"], ["consume", "--http-port", "0"],
                            ["replay", "--table", "team_b.outbox", "--all"]] {
                let result = try await runCLI(command + ["--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", kafka,
                                                         "--set", tables])
                #expect(result.status == 78, "\(command[0]): \(result.output)")
                #expect(result.output.contains("team_b.outbox column mq_key: found no such column"), "\(command[0]): \(result.output)")
                #expect(result.output.contains("ADD COLUMN mq_key text NOT NULL"), "\(command[0]): \(result.output)")
            }
            #expect(try await db.query("SELECT count(*) AS n FROM pg_replication_slots WHERE slot_name = $1", [.text(ctx.slotName)])
                .single().int("n") == 0, "refused before the slot is created")
        }
    }
}

@Suite("Several outbox tables: sharded capture")
struct SeveralTablesShardedTests {
    @Test("two shards over two tables (migrate --schema, then --shards 2): each row once, each key through its own shard in both tables")
    func shardsOverTwoTables() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let tables = "outbox-tables=public.outbox,team_a.outbox"
            for arguments in [["--schema", "team_a"], ["--shards", "2"]] {
                let result = try await runCLI(["migrate", "--database-url", ctx.databaseURL, "--slot", ctx.slotName, "--set", tables] + arguments)
                #expect(result.status == 0, "\(arguments): \(result.output)")
            }
            let relays = try (0..<2).map { index in
                try RunningRelay.start(ctx) {
                    $0.tables = [.default, SeveralTablesTests.teamA]
                    $0.shard = try! ShardSpec.parse("\(index)/2")
                    $0.slotName += "_\(index)"
                    $0.publication = "outbox_pub_\(index)_of_2"
                    $0.router = try! TopicRouter(routes: ["BOOK_SAVE": "BOOK_SAVE.s\(index)"], allowList: [], deadLetterTopic: "outbox.dlq")
                }
            }
            for relay in relays { #expect(await eventually { relay.service.health.current.state == .streaming }) }
            for table in [OutboxTable.default, SeveralTablesTests.teamA] {
                try await db.query("""
                    INSERT INTO \(table.sql) (topic, mq_key, type, payload)
                    SELECT 'BOOK_SAVE', 'BOOK:' || (g % 40), 'BOOK_SAVE', jsonb_build_object('g', g) FROM generate_series(1, 200) g
                    """)
            }
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE.s0", "BOOK_SAVE.s1"],
                                                  count: 401, timeout: .seconds(90), idle: .seconds(5))
            #expect(messages.count == 400)
            let rows = Set(messages.map { "\($0.headerString("outbox-table") ?? "public.outbox")/\($0.headerString("outbox-id") ?? "?")" })
            #expect(rows.count == 400, "each row of each table once")
            let expected = Dictionary(uniqueKeysWithValues: try await db.query("""
                SELECT DISTINCT mq_key, \(ShardSpec.shardExpressionSQL(count: 2)) AS shard FROM public.outbox
                """).rows.map { (try $0.string("mq_key"), "BOOK_SAVE.s\(try $0.int("shard"))") })
            let misplaced = messages.filter { expected[String(decoding: $0.key ?? [], as: UTF8.self)] != $0.topic }
            #expect(misplaced.isEmpty, "\(misplaced.count) records published by a shard not their key's")
            for relay in relays { try await relay.stop() }
        }
    }
}
