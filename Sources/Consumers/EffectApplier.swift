import Foundation
import KafkaClient
import PostgresClient
import Schema

/// What happened to one message inside the batch transaction.
enum ApplyOutcome: Equatable {
    case applied(type: String)
    /// The row was already COMPLETE: a replay, a relay duplicate or a sweeper resend.
    case duplicate
    /// The message cannot be applied, ever; it goes to the dead-letter topic.
    case poison(reason: String, detail: String)
}

/// Applies one message's effect inside the caller's transaction: status guard, PUBLISHED,
/// effect, COMPLETE. The guard (`SELECT … FOR UPDATE` on the outbox row) serializes
/// concurrent consumers of the same row and makes a replay a no-op.
struct EffectApplier {
    func apply(_ message: KafkaMessage, on connection: PGConnection) throws -> ApplyOutcome {
        let type = message.header("outbox-type").map { String(decoding: $0, as: UTF8.self) } ?? message.topic
        guard type == EventType.bookSave || type == EventType.paymentSave else {
            return .poison(reason: "unknown_type", detail: "no handler for event type \(String(type.prefix(100)))")
        }
        let decoder = JSONDecoder()
        let outboxID: Int64
        let effect: (PGConnection, Int64) throws -> Void
        do {
            if type == EventType.bookSave {
                let event = try decoder.decode(BookEvent.self, from: Data(message.value))
                guard let id = event.outboxId ?? headerID(message) else { return .poison(reason: "unparseable", detail: "no outboxId") }
                outboxID = id
                effect = { conn, id in
                    try conn.queryBlocking("""
                        INSERT INTO booking_record (outbox_id, booking_id, seat_id, user_id, payload)
                        VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (outbox_id) DO NOTHING
                        """, [.int(id), .int(event.book.bookingId), .int(event.book.seatId), .int(event.book.userId),
                              .text(String(decoding: message.value, as: UTF8.self))])
                }
            } else {
                let event = try decoder.decode(PaymentEvent.self, from: Data(message.value))
                guard let id = event.outboxId ?? headerID(message) else { return .poison(reason: "unparseable", detail: "no outboxId") }
                outboxID = id
                effect = { conn, id in
                    try conn.queryBlocking("""
                        INSERT INTO payment_ledger (outbox_id, payment_id, booking_id, user_id, amount)
                        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (outbox_id) DO NOTHING
                        """, [.int(id), .int(event.payment.paymentId), .int(event.payment.bookingId),
                              .int(event.payment.userId), .int(event.payment.amount)])
                    try conn.queryBlocking("UPDATE wait_token SET status = 'EXPIRED' WHERE token_id = $1",
                                           [.int(event.waitToken.tokenId)])
                }
            }
        } catch {
            return .poison(reason: "unparseable", detail: "payload is not a valid \(type) event: \(String("\(error)".prefix(300)))")
        }

        let row = try connection.queryBlocking("SELECT status FROM outbox WHERE outbox_id = $1 FOR UPDATE", [.int(outboxID)])
        guard let status = try row.rows.first?.string("status") else {
            return .poison(reason: "missing_outbox_row", detail: "outbox row \(outboxID) does not exist")
        }
        if status == "COMPLETE" { return .duplicate }
        // As the original service did on receipt, then the effect, then COMPLETE: all in
        // this transaction, so the flips are only visible together with the effect.
        try connection.queryBlocking("UPDATE outbox SET status = 'PUBLISHED' WHERE outbox_id = $1", [.int(outboxID)])
        try effect(connection, outboxID)
        try connection.queryBlocking("UPDATE outbox SET status = 'COMPLETE' WHERE outbox_id = $1", [.int(outboxID)])
        return .applied(type: type)
    }

    private func headerID(_ message: KafkaMessage) -> Int64? {
        message.header("outbox-id").flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
    }
}
