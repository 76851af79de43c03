import Foundation
import KafkaClient
import Logging
import PostgresClient
import Schema

/// A batch ready for the set-based statement: its plan and the statement's parameters.
struct PreparedBatch {
    let plan: BatchPlan
    let parameters: [PGValue]
}

/// What happened to one message inside the batch transaction.
enum ApplyOutcome: Equatable {
    case applied(type: String)
    /// The row was already COMPLETE: a replay, a relay duplicate or a sweeper resend.
    case duplicate
    /// The message cannot be applied, ever; it goes to the dead-letter topic.
    case poison(reason: String, detail: String)

    /// No outbox row, and no effect recorded for it: nothing this consumer can apply.
    static func missingRow(_ id: Int64) -> ApplyOutcome {
        .poison(reason: "missing_outbox_row", detail: "outbox row \(id) does not exist")
    }

    var isMissingRow: Bool {
        if case .poison("missing_outbox_row", _) = self { return true }
        return false
    }
}

/// One message, decoded: the effect it asks for, or why it can never be applied.
enum ParsedMessage {
    case booking(outboxID: Int64, event: BookingEffect, payload: [UInt8])
    case payment(outboxID: Int64, event: PaymentEffect)
    case poison(reason: String, detail: String)

    var outboxID: Int64? {
        switch self {
        case .booking(let id, _, _), .payment(let id, _): id
        case .poison: nil
        }
    }

    var type: String {
        switch self {
        case .booking: EventType.bookSave
        case .payment: EventType.paymentSave
        case .poison: ""
        }
    }

    /// The outcome of a message that can never be applied; nil for an effect.
    var poisonOutcome: ApplyOutcome? {
        if case .poison(let reason, let detail) = self { return .poison(reason: reason, detail: detail) }
        return nil
    }
}

/// Applies effects inside the caller's transaction: status guard, effect, COMPLETE. The
/// guard (the row lock on the outbox row, taken before anything is written) serializes
/// concurrent consumers of the same row and makes a replay a no-op.
///
/// Two paths with the same outcome. `applyBatch` does the whole batch in one set-based
/// statement (one round trip per batch instead of three or four per message); when the database
/// refuses a batch's data, the caller rolls back and falls back to `apply`, one message per
/// savepoint, which isolates the message at fault.
///
/// The original service flipped the row to PUBLISHED on receipt and to COMPLETE after the
/// effect. Both flips happen in one transaction here, so no other session can ever see
/// PUBLISHED; the row goes straight to COMPLETE (one row version instead of two).
struct EffectApplier {
    var logger: Logger

    /// One decoder for every message (it keeps no state between calls) rather than one
    /// allocated and set up per message.
    private static let decoder = JSONDecoder()

    init(logger: Logger = Logger(label: "outbox-consumers")) {
        self.logger = logger
    }

    /// The first of `names` the message carries (one per header style).
    static func firstHeader(_ message: KafkaMessage, _ names: [String]) -> [UInt8]? {
        for name in names { if let value = message.header(name) { return value } }
        return nil
    }

    func parse(_ message: KafkaMessage) -> ParsedMessage {
        let type = Self.firstHeader(message, RecordContract.typeHeaders).map { String(decoding: $0, as: UTF8.self) }
        let kind: EventKind
        switch EventRoute.decide(topic: message.topic, type: type) {
        case .success(let decided): kind = decided
        case .failure(let refused): return .poison(reason: refused.reason, detail: refused.detail)
        }
        let decoder = Self.decoder
        do {
            if kind == .booking {
                let event = try decoder.decode(BookingEffect.self, from: Data(message.value))
                switch outboxID(of: message, payloadID: event.outboxId) {
                case .success(let id): return .booking(outboxID: id, event: event, payload: message.value)
                case .failure(let problem): return .poison(reason: "unparseable", detail: problem.detail)
                }
            }
            let event = try decoder.decode(PaymentEffect.self, from: Data(message.value))
            switch outboxID(of: message, payloadID: event.outboxId) {
            case .success(let id): return .payment(outboxID: id, event: event)
            case .failure(let problem): return .poison(reason: "unparseable", detail: problem.detail)
            }
        } catch {
            return .poison(reason: "unparseable", detail: "payload is not a valid \(kind.type) event: \(String("\(error)".prefix(300)))")
        }
    }

    // MARK: one message (savepoint mode)

    func apply(_ message: KafkaMessage, on connection: PGConnection) throws -> ApplyOutcome {
        let parsed = parse(message)
        if let poison = parsed.poisonOutcome { return poison }
        guard let outboxID = parsed.outboxID else { preconditionFailure("an effect without an outbox id") }
        let row = try connection.queryBlocking("SELECT status FROM outbox WHERE outbox_id = $1 FOR UPDATE", [.int(outboxID)])
        guard let status = try row.rows.first?.string("status") else {
            return try Self.appliedWithoutRow([outboxID], on: connection).isEmpty ? .missingRow(outboxID) : .duplicate
        }
        if status == "COMPLETE" { return .duplicate }
        switch parsed {
        case .booking(let id, let event, let payload):
            try connection.queryBlocking("""
                INSERT INTO booking_record (outbox_id, booking_id, seat_id, user_id, payload)
                VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (outbox_id) DO NOTHING
                """, [.int(id), .int(event.bookingId), .int(event.seatId), .int(event.userId),
                      .text(String(decoding: payload, as: UTF8.self))])
        case .payment(let id, let event):
            try connection.queryBlocking("""
                INSERT INTO payment_ledger (outbox_id, payment_id, booking_id, user_id, amount)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT (outbox_id) DO NOTHING
                """, [.int(id), .int(event.paymentId), .int(event.bookingId), .int(event.userId), .int(event.amount)])
            try connection.queryBlocking("UPDATE wait_token SET status = 'EXPIRED' WHERE token_id = $1", [.int(event.tokenId)])
        case .poison:
            break
        }
        try connection.queryBlocking("UPDATE outbox SET status = 'COMPLETE' WHERE outbox_id = $1", [.int(outboxID)])
        return .applied(type: parsed.type)
    }

    // MARK: a whole batch (set-based)

    /// The whole batch in one statement: one round trip, and each outbox row written once.
    /// `existing` and `completed` run on the same snapshot: a row `existing` saw but
    /// `completed` did not touch was COMPLETE already (or was completed by a concurrent
    /// consumer, whose commit the UPDATE waited for and re-checked), so it is a duplicate;
    /// a row neither saw is missing. The UPDATE takes the row locks the guard needs; its
    /// primary-key scan visits the (sorted) ids in order, so two consumers holding
    /// overlapping batches (briefly, around a rebalance) lock in the same order, and a
    /// deadlock all the same is transient: the batch is retried. Effects are inserted only
    /// for rows this statement completed. There is no separate PUBLISHED step: inside this
    /// transaction no other session could ever see it, so writing it cost a second row
    /// version (and index entry) per row for nothing.
    static let batchStatement = """
        WITH existing AS (
            SELECT outbox_id FROM outbox WHERE outbox_id = ANY($1::bigint[])
        ), completed AS (
            UPDATE outbox SET status = 'COMPLETE'
            WHERE outbox_id = ANY($1::bigint[]) AND status <> 'COMPLETE'
            RETURNING outbox_id
        ), booked AS (
            INSERT INTO booking_record (outbox_id, booking_id, seat_id, user_id, payload)
            SELECT r.id, r.booking_id, r.seat_id, r.user_id, r.payload::jsonb
            FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[])
                AS r(id, booking_id, seat_id, user_id, payload)
            JOIN completed c ON c.outbox_id = r.id
            ON CONFLICT (outbox_id) DO NOTHING
        ), paid AS (
            INSERT INTO payment_ledger (outbox_id, payment_id, booking_id, user_id, amount)
            SELECT r.id, r.payment_id, r.booking_id, r.user_id, r.amount
            FROM unnest($7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])
                AS r(id, payment_id, booking_id, user_id, amount)
            JOIN completed c ON c.outbox_id = r.id
            ON CONFLICT (outbox_id) DO NOTHING
        ), expired AS (
            UPDATE wait_token SET status = 'EXPIRED'
            WHERE token_id IN (
                SELECT t.token_id FROM unnest($7::bigint[], $12::bigint[]) AS t(id, token_id)
                JOIN completed c ON c.outbox_id = t.id)
        )
        SELECT e.outbox_id, c.outbox_id IS NOT NULL AS completed
        FROM existing e LEFT JOIN completed c USING (outbox_id)
        """

    /// Parses and plans a batch and renders the statement's parameters: pure CPU work, done
    /// on the Kafka thread while the database thread applies the batch before.
    func prepare(_ batch: [KafkaMessage]) -> PreparedBatch {
        let plan = BatchPlan(batch.map(parse))
        return PreparedBatch(plan: plan, parameters: plan.ids.isEmpty ? [] : [
            .text(SQLArray.bigints(plan.ids)),
            .text(SQLArray.bigints(plan.bookings.lazy.map(\.id))),
            .text(SQLArray.bigints(plan.bookings.lazy.map(\.event.bookingId))),
            .text(SQLArray.bigints(plan.bookings.lazy.map(\.event.seatId))),
            .text(SQLArray.bigints(plan.bookings.lazy.map(\.event.userId))),
            .text(SQLArray.texts(plan.bookings.lazy.map(\.payload))),
            .text(SQLArray.bigints(plan.payments.lazy.map(\.id))),
            .text(SQLArray.bigints(plan.payments.lazy.map(\.event.paymentId))),
            .text(SQLArray.bigints(plan.payments.lazy.map(\.event.bookingId))),
            .text(SQLArray.bigints(plan.payments.lazy.map(\.event.userId))),
            .text(SQLArray.bigints(plan.payments.lazy.map(\.event.amount))),
            .text(SQLArray.bigints(plan.payments.lazy.map(\.event.tokenId))),
        ])
    }

    /// Outcomes aligned with the prepared batch. Throws what the database threw; the caller
    /// decides between retrying (transient) and falling back to `apply` per message (data).
    func applyBatch(_ prepared: PreparedBatch, on connection: PGConnection) throws -> [ApplyOutcome] {
        let plan = prepared.plan
        guard !plan.ids.isEmpty else { return plan.outcomes(existing: [], completed: []) }
        let rows = try connection.queryBlocking(Self.batchStatement, prepared.parameters).rows
        var existing = Set<Int64>(minimumCapacity: rows.count), completed = Set<Int64>(minimumCapacity: rows.count)
        for row in rows {
            let id = try row.int64("outbox_id")
            existing.insert(id)
            if try row.bool("completed") { completed.insert(id) }
        }
        let missing = plan.missing(existing: existing)
        let appliedWithoutRow = missing.isEmpty ? [] : try Self.appliedWithoutRow(missing, on: connection)
        return plan.outcomes(existing: existing, completed: completed, appliedWithoutRow: appliedWithoutRow)
    }

    /// Of `ids`, whose outbox rows are gone, those whose effect is recorded: the row was
    /// applied and later deleted by retention (which keeps the effect tables), so a message
    /// for it is a replay. Asked only for missing rows, so the usual batch pays nothing.
    static func appliedWithoutRow(_ ids: [Int64], on connection: PGConnection) throws -> Set<Int64> {
        let rows = try connection.queryBlocking("""
            SELECT outbox_id FROM booking_record WHERE outbox_id = ANY($1::bigint[])
            UNION ALL
            SELECT outbox_id FROM payment_ledger WHERE outbox_id = ANY($1::bigint[])
            """, [.text(SQLArray.bigints(ids))]).rows
        return Set(try rows.map { try $0.int64("outbox_id") })
    }

    struct MissingOutboxID: Error {
        var detail: String
    }

    /// The outbox row a message applies to. The id header wins (`outbox-id`, `ce_id` or
    /// `id`, whichever the record's header style carries): the relay sets it
    /// from the row's own primary key, while the payload is application data and may carry
    /// a stale id (a copied or re-sent payload), which would apply the effect to another
    /// row. The payload's `outboxId` is only a fallback for messages without the header
    /// (produced by something other than the relay). A header that is present but not an
    /// id is refused rather than guessed around.
    func outboxID(of message: KafkaMessage, payloadID: Int64?) -> Result<Int64, MissingOutboxID> {
        guard let raw = Self.firstHeader(message, RecordContract.outboxIDHeaders) else {
            guard let payloadID else {
                return .failure(MissingOutboxID(detail: "no outbox-id, ce_id or id header and no outboxId in the payload"))
            }
            return .success(payloadID)
        }
        let text = String(decoding: raw, as: UTF8.self)
        guard let headerID = Int64(text) else {
            return .failure(MissingOutboxID(detail: "outbox id header \(String(reflecting: String(text.prefix(40)))) is not an outbox id"))
        }
        if let payloadID, payloadID != headerID {
            logger.warning("outbox-id header and payload outboxId disagree; applying the effect to the header's row", metadata: [
                "outbox_id_header": "\(headerID)", "outbox_id_payload": "\(payloadID)",
                "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)",
            ])
        }
        return .success(headerID)
    }
}
