import Consumers
import Foundation
import KafkaClient
import Logging
import PostgresClient
import Relay
import Schema
import Testing

/// Rows written the way the original Spring service wrote them (topic BOOK_SAVE, type
/// BOOK, `book.bookId`; PAYMENT_SAVE, PAYMENT), inserted with plain SQL, relayed in each
/// header style and applied by the consumers exactly once.
@Suite("Original-service rows through every header style")
struct OriginalServiceRowTests {
    @Test("a plain-SQL BOOK_SAVE/BOOK and PAYMENT_SAVE/PAYMENT row is applied exactly once", arguments: HeaderStyle.allCases)
    func appliedOnce(style: HeaderStyle) async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let token = try await db.query("""
                WITH u AS (INSERT INTO app_user (name, point_balance) VALUES ('original', 0) RETURNING user_id)
                INSERT INTO wait_token (user_id, token, status, expires_at)
                SELECT user_id, gen_random_uuid(), 'ACTIVE', now() + interval '1 hour' FROM u RETURNING token_id, user_id
                """).single()
            let tokenID = try token.int64("token_id"), userID = try token.int64("user_id")
            // What the original service's writer inserts: its own type values and field
            // names, outboxId not yet known when the payload was built.
            let rows = try await db.query("""
                INSERT INTO outbox (topic, mq_key, type, payload) VALUES
                ('BOOK_SAVE', 'BOOK:7', 'BOOK', jsonb_build_object(
                    'book', jsonb_build_object('bookId', 101, 'seatId', 7, 'userId', $1::bigint, 'price', 1000, 'status', 'RESERVED'),
                    'waitToken', jsonb_build_object('tokenId', $2::bigint, 'userId', $1::bigint, 'token', 'x', 'status', 'ACTIVE'),
                    'outboxId', NULL, 'messageQueueKey', 'BOOK:7')),
                ('PAYMENT_SAVE', 'PAYMENT:101', 'PAYMENT', jsonb_build_object(
                    'payment', jsonb_build_object('paymentId', 55, 'bookId', 101, 'userId', $1::bigint, 'amount', 1000),
                    'book', jsonb_build_object('bookId', 101, 'seatId', 7, 'userId', $1::bigint, 'price', 1000, 'status', 'PAID'),
                    'waitToken', jsonb_build_object('tokenId', $2::bigint, 'userId', $1::bigint, 'token', 'x', 'status', 'ACTIVE'),
                    'outboxId', NULL, 'messageQueueKey', 'PAYMENT:101'))
                RETURNING outbox_id, pg_current_xact_id()::text AS xid
                """, [.int(userID), .int(tokenID)]).rows
            let ids = try rows.map { try $0.int64("outbox_id") }

            let relay = try RunningRelay.start(ctx) { $0.headerStyle = style }
            let consumer = try RunningConsumer.start(ctx, batchSize: 8)
            #expect(await eventually { (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 2 },
                    "both rows COMPLETE under header style \(style)")

            // The same two records again, headers and all (a replay, a relay duplicate or a
            // sweeper re-send look the same): nothing may apply twice.
            let published = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE", "PAYMENT_SAVE"], count: 2)
            #expect(published.count == 2)
            let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers),
                                             logger: Logger(label: "t"), onDelivery: { _ in })
            for message in published {
                _ = try await producer.send(topic: message.topic, key: message.key ?? [], value: message.value, headers: message.headers)
            }
            await producer.close()
            #expect(await eventually { consumer.service.totals.duplicates == 2 })
            try await consumer.stop()
            try await relay.stop()

            #expect(consumer.service.totals.applied == 2)
            #expect(consumer.service.totals.deadLettered == 0)
            let booking = try await db.query("SELECT outbox_id, booking_id, seat_id, user_id FROM booking_record").rows
            #expect(try booking.map { [try $0.int64("outbox_id"), try $0.int64("booking_id"), try $0.int64("seat_id"), try $0.int64("user_id")] }
                    == [[ids[0], 101, 7, userID]])
            let ledger = try await db.query("SELECT outbox_id, payment_id, booking_id, amount FROM payment_ledger").rows
            #expect(try ledger.map { [try $0.int64("outbox_id"), try $0.int64("payment_id"), try $0.int64("booking_id"), try $0.int64("amount")] }
                    == [[ids[1], 55, 101, 1000]])
            #expect(try await db.query("SELECT status FROM wait_token WHERE token_id = $1", [.int(tokenID)]).single().string("status") == "EXPIRED")
        }
    }
}
