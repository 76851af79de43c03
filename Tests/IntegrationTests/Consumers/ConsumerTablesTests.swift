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

    /// team_a.outbox, the shape of public.outbox, with its own id sequence (a team's own
    /// table, not `migrate --schema`'s: this test depends only on the shape).
    static func createTeamATable(_ db: PGConnection) async throws {
        try await db.executeScript("""
            CREATE SCHEMA team_a;
            CREATE TABLE team_a.outbox (LIKE public.outbox INCLUDING ALL);
            CREATE SEQUENCE team_a.outbox_outbox_id_seq OWNED BY team_a.outbox.outbox_id;
            ALTER TABLE team_a.outbox ALTER COLUMN outbox_id SET DEFAULT nextval('team_a.outbox_outbox_id_seq');
            """)
    }

    @Test("rows with the same ids in public.outbox and team_a.outbox all end COMPLETE with one effect each; a replay changes nothing; an unconfigured table is dead-lettered")
    func sameIDsInTwoTables() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await Self.createTeamATable(db)
            _ = try await ConsumerTests.bookSeatsAndPayOne(db, count: 5)
            // The same events in team_a.outbox: its own sequence gives them the same ids.
            try await db.query("""
                INSERT INTO team_a.outbox (topic, mq_key, type, payload)
                SELECT topic, mq_key, type, payload FROM public.outbox ORDER BY outbox_id
                """)
            func ids(_ table: OutboxTable) async throws -> [Int64] {
                try await db.query("SELECT outbox_id FROM \(table.sql) ORDER BY outbox_id").rows.map { try $0.int64("outbox_id") }
            }
            let publicIDs = try await ids(.default), teamAIDs = try await ids(Self.teamA)
            try #require(publicIDs.count == 6 && teamAIDs == publicIDs, "the tables' ids must collide")

            // public.outbox's records without the header (as the relay sends them), team_a's with it.
            let rows = try await produceOutboxRows(ctx, db)
            _ = try await produceOutboxRows(ctx, db, from: Self.teamA, tableHeader: "team_a.outbox")
            // A table this consumer is not configured for, with an id both tables have.
            try await ConsumerTests.sendRaw(ctx, [("BOOK:b", Self.bookingPayload(bookingID: 777_777),
                                                   [("outbox-id", String(publicIDs[0])), ("outbox-type", "BOOK_SAVE"),
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

    /// Both tables' rows COMPLETE, and each (table, id) has its effect exactly once.
    static func expectEveryRowAppliedOnce(_ db: PGConnection, rows: Int) async throws {
        for table in [OutboxTable.default, teamA] {
            #expect(try await count(db, "SELECT count(*) AS n FROM \(table.sql) WHERE status <> 'COMPLETE'") == 0, "\(table) has rows not COMPLETE")
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
