@testable import Consumers
import Foundation
import KafkaClient
import PGOutput
import PostgresClient
import Schema
import Testing

/// Several outbox tables (issue 31 item 5): each has its own outbox_id sequence, so ids
/// collide across tables. A consumer must complete the row in the table its record came
/// from and record the effect under (table, id). It used to apply team_a.outbox row 5's
/// message to public.outbox row 5 (a duplicate there), so team_a's rows stayed INIT and
/// their effects were lost.
@Suite("Consumers update the row in its own outbox table")
struct ConsumerTablesTests {
    static let teamA = try! OutboxTable(parsing: "team_a.outbox")

    /// A migrated database with team_a.outbox, the shape of public.outbox with its own id
    /// sequence (a team's own table, not `migrate --schema`'s: this depends only on the
    /// shape), and the same six events (five bookings, one payment) in both tables, so with
    /// the same ids. Their records are in Kafka: public.outbox's without the `outbox-table`
    /// header (as the relay sends them), team_a's with it. Returns the ids, the same in both.
    static func sameEventsInTwoTables(_ ctx: TestContext) async throws -> (db: PGConnection, ids: [Int64]) {
        let db = try await ctx.migrated()
        try await SeveralTablesTests.createOutbox(db, teamA)
        _ = try await ConsumerTests.bookSeatsAndPayOne(db, count: 5)
        try await db.query("""
            INSERT INTO team_a.outbox (topic, mq_key, type, payload)
            SELECT topic, mq_key, type, payload FROM public.outbox ORDER BY outbox_id
            """)
        func ids(_ table: OutboxTable) async throws -> [Int64] {
            try await db.query("SELECT outbox_id FROM \(table.sql) ORDER BY outbox_id").rows.map { try $0.int64("outbox_id") }
        }
        let publicIDs = try await ids(.default), teamAIDs = try await ids(teamA)
        try #require(publicIDs.count == 6 && teamAIDs == publicIDs, "the tables' ids must collide")
        _ = try await produceOutboxRows(ctx, db)
        _ = try await produceOutboxRows(ctx, db, from: teamA, tableHeader: "team_a.outbox")
        return (db, publicIDs)
    }

    @Test("rows with the same ids in public.outbox and team_a.outbox all end COMPLETE with one effect each; a replay changes nothing; an unconfigured table is dead-lettered")
    func sameIDsInTwoTables() async throws {
        try await withTestContext { ctx in
            let (db, ids) = try await Self.sameEventsInTwoTables(ctx)
            let rows = ids.count
            // A table this consumer is not configured for, with an id both tables have.
            try await ConsumerTests.sendRaw(ctx, [("BOOK:b", Self.bookingPayload(bookingID: 777_777),
                                                   [("outbox-id", String(ids[0])), ("outbox-type", "BOOK_SAVE"),
                                                    ("outbox-table", "team_b.outbox")])])

            let consumer = try RunningConsumer.start(ctx, group: "tables", batchSize: 64, configure: { $0.tables = [.default, Self.teamA] })
            #expect(await eventually { consumer.service.totals.applied == rows * 2 && consumer.service.totals.deadLettered == 1 },
                    "\(consumer.service.totals)")
            try await Self.expectEveryRowAppliedOnce(db, rows: rows)

            // A replay of the same messages, public.outbox's now with the header spelled out.
            _ = try await produceOutboxRows(ctx, db, tableHeader: "public.outbox")
            _ = try await produceOutboxRows(ctx, db, from: Self.teamA, tableHeader: "team_a.outbox")
            #expect(await eventually { consumer.service.totals.duplicates == rows * 2 }, "\(consumer.service.totals)")
            try await consumer.stop()
            #expect(consumer.service.totals.applied == rows * 2 && consumer.service.totals.deadLettered == 1, "\(consumer.service.totals)")
            try await Self.expectEveryRowAppliedOnce(db, rows: rows)

            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.consumer.dlq"], count: 1)
            #expect(dead.first?.headerString("outbox-dlq-reason") == "unknown_outbox_table")
            let error = dead.first?.headerString("outbox-dlq-error") ?? ""
            #expect(error.contains("team_b.outbox") && error.contains("outbox-tables"), "the error names the table and the fix: \(error)")
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record WHERE booking_id = 777777 OR outbox_table = 'team_b.outbox'") == 0,
                    "the unconfigured table's record was applied somewhere")
        }
    }

    /// A replay after retention deleted team_a's rows: a message is a duplicate only if its
    /// own table recorded the effect (public.outbox's effect for the same id says nothing
    /// about team_a's row), in set-based batches and on the one-by-one path alike.
    @Test("a replay after retention in team_a.outbox: duplicates only where team_a recorded the effect, in batches and one by one")
    func replayAfterRetentionPerTable() async throws {
        try await withTestContext { ctx in
            let (db, ids) = try await Self.sameEventsInTwoTables(ctx)
            let rows = ids.count
            let tables: (inout ConsumerConfiguration) -> Void = { $0.tables = [.default, Self.teamA]; $0.missingRowWindow = .zero }
            let first = try RunningConsumer.start(ctx, group: "applied-first", batchSize: 64, configure: tables)
            #expect(await eventually { first.service.totals.applied == rows * 2 }, "\(first.service.totals)")
            try await first.stop()

            // Retention in team_a; its row 1's effect is gone too, as if it had never been
            // applied there. public.outbox row 1 and its effect stay.
            let lost = try await db.query("SELECT min(outbox_id) AS id FROM team_a.outbox").single().int64("id")
            try await db.query("DELETE FROM team_a.outbox WHERE status = 'COMPLETE'")
            try await db.query("DELETE FROM booking_record WHERE outbox_table = 'team_a.outbox' AND outbox_id = $1", [.int(lost)])
            // A message the database refuses, for a new team_a row, so a batch holding it is
            // redone one message per savepoint.
            let badID = try await db.query("""
                INSERT INTO team_a.outbox (topic, mq_key, type, payload) VALUES ('BOOK_SAVE', 'BOOK:bad', 'BOOK_SAVE', '{}') RETURNING outbox_id
                """).single().int64("outbox_id")
            let bad = #"{"book":{"bookingId":1,"seatId":1,"userId":1,"price":1,"status":"RES\u0000"},"# +
                #""waitToken":{"tokenId":1,"userId":1,"token":"t","status":"ACTIVE"}}"#
            try await ConsumerTests.sendRaw(ctx, [("BOOK:bad", bad, [("outbox-id", String(badID)), ("outbox-type", "BOOK_SAVE"),
                                                                     ("outbox-table", "team_a.outbox")])])

            for (group, batchSize) in [("replay-64", 64), ("replay-1", 1)] {
                let replay = try RunningConsumer.start(ctx, group: group, batchSize: batchSize, configure: tables)
                #expect(await eventually { replay.service.totals.duplicates + replay.service.totals.deadLettered == rows * 2 + 1 },
                        "\(group): \(replay.service.totals)")
                try await replay.stop()
                #expect(replay.service.totals.duplicates == rows * 2 - 1, "\(group): \(replay.service.totals)")
                #expect(replay.service.totals.deadLettered == 2 && replay.service.totals.applied == 0, "\(group): \(replay.service.totals)")
            }
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.consumer.dlq"], count: 4)
            let reasons = dead.map { "\($0.headerString("outbox-dlq-reason") ?? "?") \($0.headerString("outbox-id") ?? "?")" }
            #expect(reasons.sorted() == ["missing_outbox_row \(lost)", "missing_outbox_row \(lost)",
                                         "rejected_by_database \(badID)", "rejected_by_database \(badID)"].sorted(), "\(reasons)")
            #expect(dead.allSatisfy { $0.headerString("outbox-table") == "team_a.outbox" })
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record WHERE outbox_table = 'team_a.outbox'") == rows - 2)
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record WHERE outbox_table = 'public.outbox'") == rows - 1)
            #expect(try await db.query("SELECT status FROM team_a.outbox WHERE outbox_id = $1", [.int(badID)]).single().string("status") == "INIT")
        }
    }

    /// Both tables' rows COMPLETE, and each (table, id) has its effect exactly once.
    static func expectEveryRowAppliedOnce(_ db: PGConnection, rows: Int) async throws {
        for table in [OutboxTable.default, teamA] {
            #expect(try await count(db, "SELECT count(*) AS n FROM \(table.sql) WHERE status <> 'COMPLETE'") == 0, "\(table) has rows not COMPLETE")
        }
        for table in [OutboxTable.default, teamA] {
            let effects = try await db.query("""
                SELECT (SELECT count(*) FROM booking_record WHERE outbox_table = $1)::int AS booked,
                       (SELECT count(*) FROM payment_ledger WHERE outbox_table = $1)::int AS paid,
                       (SELECT count(*) FROM \(table.sql) o WHERE NOT EXISTS (
                            SELECT 1 FROM booking_record b WHERE b.outbox_table = $1 AND b.outbox_id = o.outbox_id
                            UNION ALL SELECT 1 FROM payment_ledger p WHERE p.outbox_table = $1 AND p.outbox_id = o.outbox_id))::int AS without
                """, [.text(table.qualifiedName)]).single()
            #expect(try effects.int("booked") == rows - 1 && effects.int("paid") == 1, "\(table): effects per (table, id)")
            #expect(try effects.int("without") == 0, "\(table): a row without its effect")
        }
        #expect(try await count(db, "SELECT count(*) AS n FROM booking_record") == 2 * (rows - 1))
        #expect(try await count(db, "SELECT count(*) AS n FROM payment_ledger") == 2)
    }

    static func bookingPayload(bookingID: Int64) -> String {
        #"{"book":{"bookingId":\#(bookingID),"seatId":1,"userId":1,"price":1,"status":"RESERVED"},"# +
            #""waitToken":{"tokenId":1,"userId":1,"token":"t","status":"ACTIVE"}}"#
    }
}
