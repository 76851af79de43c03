import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import Schema

/// A batch ready for the set-based statements: its plan, and one statement with its
/// parameters per table the batch touches (`plan.parts` order).
struct PreparedBatch {
    struct Statement {
        let table: OutboxTable
        let sql: String
        let parameters: [PGValue]
    }

    let plan: BatchPlan
    let statements: [Statement]
}

/// What happened to one message inside the batch transaction.
enum ApplyOutcome: Equatable {
    case applied(type: String)
    /// The row was already COMPLETE: a replay, a relay duplicate or a sweeper resend.
    case duplicate
    /// The message cannot be applied, ever; it goes to the dead-letter topic.
    case poison(reason: String, detail: String)

    /// No outbox row, and no effect recorded for it: nothing this consumer can apply.
    static func missingRow(_ row: OutboxRowKey) -> ApplyOutcome {
        .poison(reason: "missing_outbox_row", detail: "\(row) does not exist")
    }

    var isMissingRow: Bool {
        if case .poison("missing_outbox_row", _) = self { return true }
        return false
    }
}

/// One message, decoded: the effect it asks for, or why it can never be applied.
enum ParsedMessage {
    case booking(row: OutboxRowKey, event: BookingEffect, payload: [UInt8])
    case payment(row: OutboxRowKey, event: PaymentEffect)
    case poison(reason: String, detail: String)

    /// The outbox row the effect belongs to; nil for poison.
    var row: OutboxRowKey? {
        switch self {
        case .booking(let row, _, _), .payment(let row, _): row
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
    /// The outbox tables this consumer updates (`outbox-tables`); a record of any other is
    /// poison (`TableRoute`).
    let tables: [OutboxTable]
    /// `batchStatement(for:)` of each of `tables`, rendered once.
    private let batchStatements: [OutboxTable: String]

    /// One decoder for every message (it keeps no state between calls) rather than one
    /// allocated and set up per message.
    private static let decoder = JSONDecoder()

    init(tables: [OutboxTable] = [.default], logger: Logger = Logger(label: "outbox-consumers")) {
        self.tables = tables
        self.logger = logger
        self.batchStatements = Dictionary(tables.map { ($0, Self.batchStatement(for: $0)) }, uniquingKeysWith: { first, _ in first })
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
        let table: OutboxTable
        switch TableRoute.decide(header: message.header(RecordContract.Header.table), configured: tables) {
        case .success(let decided): table = decided
        case .failure(let refused): return .poison(reason: refused.reason, detail: refused.detail)
        }
        let decoder = Self.decoder
        do {
            if kind == .booking {
                let event = try decoder.decode(BookingEffect.self, from: Data(message.value))
                switch outboxID(of: message, payloadID: event.outboxId) {
                case .success(let id): return .booking(row: OutboxRowKey(table: table, id: id), event: event, payload: message.value)
                case .failure(let problem): return .poison(reason: "unparseable", detail: problem.detail)
                }
            }
            let event = try decoder.decode(PaymentEffect.self, from: Data(message.value))
            switch outboxID(of: message, payloadID: event.outboxId) {
            case .success(let id): return .payment(row: OutboxRowKey(table: table, id: id), event: event)
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
        guard let row = parsed.row else { preconditionFailure("an effect without an outbox row") }
        let table = row.table
        let current = try connection.queryBlocking("SELECT status FROM \(table.sql) WHERE outbox_id = $1 FOR UPDATE", [.int(row.id)])
        guard let status = try current.rows.first?.string("status") else {
            return try Self.appliedWithoutRow([row], on: connection).isEmpty ? .missingRow(row) : .duplicate
        }
        if status == "COMPLETE" { return .duplicate }
        switch parsed {
        case .booking(_, let event, let payload):
            try connection.queryBlocking("""
                INSERT INTO booking_record (outbox_table, outbox_id, booking_id, seat_id, user_id, payload)
                VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (outbox_table, outbox_id) DO NOTHING
                """, [.text(table.qualifiedName), .int(row.id), .int(event.bookingId), .int(event.seatId), .int(event.userId),
                      .text(String(decoding: payload, as: UTF8.self))])
        case .payment(_, let event):
            try connection.queryBlocking("""
                INSERT INTO payment_ledger (outbox_table, outbox_id, payment_id, booking_id, user_id, amount)
                VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (outbox_table, outbox_id) DO NOTHING
                """, [.text(table.qualifiedName), .int(row.id), .int(event.paymentId), .int(event.bookingId), .int(event.userId),
                      .int(event.amount)])
            try connection.queryBlocking("UPDATE wait_token SET status = 'EXPIRED' WHERE token_id = $1", [.int(event.tokenId)])
        case .poison:
            break
        }
        try connection.queryBlocking("UPDATE \(table.sql) SET status = 'COMPLETE' WHERE outbox_id = $1", [.int(row.id)])
        return .applied(type: parsed.type)
    }

    // MARK: a whole batch (set-based)

    /// One table's part of the batch in one statement: one round trip, and each outbox row
    /// written once. `existing` and `completed` run on the same snapshot: a row `existing`
    /// saw but `completed` did not touch was COMPLETE already (or was completed by a
    /// concurrent consumer, whose commit the UPDATE waited for and re-checked), so it is a
    /// duplicate; a row neither saw is missing. The UPDATE takes the row locks the guard
    /// needs; its primary-key scan visits the (sorted) ids in order, so two consumers
    /// holding overlapping batches (briefly, around a rebalance) lock in the same order, and
    /// a deadlock all the same is transient: the batch is retried. Effects are inserted only
    /// for rows this statement completed, under the row's table ($13): ids repeat across
    /// tables, so an effect is unique per (table, id). There is no separate PUBLISHED step:
    /// inside this transaction no other session could ever see it, so writing it cost a
    /// second row version (and index entry) per row for nothing.
    static func batchStatement(for table: OutboxTable) -> String {
        """
        WITH existing AS (
            SELECT outbox_id FROM \(table.sql) WHERE outbox_id = ANY($1::bigint[])
        ), completed AS (
            UPDATE \(table.sql) SET status = 'COMPLETE'
            WHERE outbox_id = ANY($1::bigint[]) AND status <> 'COMPLETE'
            RETURNING outbox_id
        ), booked AS (
            INSERT INTO booking_record (outbox_table, outbox_id, booking_id, seat_id, user_id, payload)
            SELECT $13::text, r.id, r.booking_id, r.seat_id, r.user_id, r.payload::jsonb
            FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[])
                AS r(id, booking_id, seat_id, user_id, payload)
            JOIN completed c ON c.outbox_id = r.id
            ON CONFLICT (outbox_table, outbox_id) DO NOTHING
        ), paid AS (
            INSERT INTO payment_ledger (outbox_table, outbox_id, payment_id, booking_id, user_id, amount)
            SELECT $13::text, r.id, r.payment_id, r.booking_id, r.user_id, r.amount
            FROM unnest($7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])
                AS r(id, payment_id, booking_id, user_id, amount)
            JOIN completed c ON c.outbox_id = r.id
            ON CONFLICT (outbox_table, outbox_id) DO NOTHING
        ), expired AS (
            UPDATE wait_token SET status = 'EXPIRED'
            WHERE token_id IN (
                SELECT t.token_id FROM unnest($7::bigint[], $12::bigint[]) AS t(id, token_id)
                JOIN completed c ON c.outbox_id = t.id)
        )
        SELECT e.outbox_id, c.outbox_id IS NOT NULL AS completed
        FROM existing e LEFT JOIN completed c USING (outbox_id)
        """
    }

    /// Parses and plans a batch and renders the statements' parameters: pure CPU work, done
    /// on the Kafka thread while the database thread applies the batch before.
    func prepare(_ batch: [KafkaMessage]) -> PreparedBatch {
        let plan = BatchPlan(batch.map(parse))
        return PreparedBatch(plan: plan, statements: plan.parts.map { part in
            // Every part's table is one of `tables` (`TableRoute`), so it has its statement.
            PreparedBatch.Statement(table: part.table, sql: batchStatements[part.table] ?? Self.batchStatement(for: part.table), parameters: [
                .text(SQLArray.bigints(part.ids)),
                .text(SQLArray.bigints(part.bookings.lazy.map(\.id))),
                .text(SQLArray.bigints(part.bookings.lazy.map(\.event.bookingId))),
                .text(SQLArray.bigints(part.bookings.lazy.map(\.event.seatId))),
                .text(SQLArray.bigints(part.bookings.lazy.map(\.event.userId))),
                .text(SQLArray.texts(part.bookings.lazy.map(\.payload))),
                .text(SQLArray.bigints(part.payments.lazy.map(\.id))),
                .text(SQLArray.bigints(part.payments.lazy.map(\.event.paymentId))),
                .text(SQLArray.bigints(part.payments.lazy.map(\.event.bookingId))),
                .text(SQLArray.bigints(part.payments.lazy.map(\.event.userId))),
                .text(SQLArray.bigints(part.payments.lazy.map(\.event.amount))),
                .text(SQLArray.bigints(part.payments.lazy.map(\.event.tokenId))),
                .text(part.table.qualifiedName),
            ])
        })
    }

    /// Outcomes aligned with the prepared batch. Throws what the database threw; the caller
    /// decides between retrying (transient) and falling back to `apply` per message (data).
    func applyBatch(_ prepared: PreparedBatch, on connection: PGConnection) throws -> [ApplyOutcome] {
        let plan = prepared.plan
        var existing = Set<OutboxRowKey>(), completed = Set<OutboxRowKey>()
        for statement in prepared.statements {
            let rows = try connection.queryBlocking(statement.sql, statement.parameters).rows
            existing.reserveCapacity(existing.count + rows.count)
            for row in rows {
                let key = OutboxRowKey(table: statement.table, id: try row.int64("outbox_id"))
                existing.insert(key)
                if try row.bool("completed") { completed.insert(key) }
            }
        }
        let missing = plan.missing(existing: existing)
        let appliedWithoutRow = missing.isEmpty ? [] : try Self.appliedWithoutRow(missing, on: connection)
        return plan.outcomes(existing: existing, completed: completed, appliedWithoutRow: appliedWithoutRow)
    }

    /// Of `rows`, whose outbox rows are gone, those whose effect is recorded: the row was
    /// applied and later deleted by retention (which keeps the effect tables), so a message
    /// for it is a replay. Asked only for missing rows, so the usual batch pays nothing; one
    /// query per table, as an effect belongs to its (table, id).
    static func appliedWithoutRow(_ rows: [OutboxRowKey], on connection: PGConnection) throws -> Set<OutboxRowKey> {
        var found = Set<OutboxRowKey>()
        for (table, keys) in Dictionary(grouping: rows, by: \.table) {
            let result = try connection.queryBlocking("""
                SELECT outbox_id FROM booking_record WHERE outbox_table = $2 AND outbox_id = ANY($1::bigint[])
                UNION ALL
                SELECT outbox_id FROM payment_ledger WHERE outbox_table = $2 AND outbox_id = ANY($1::bigint[])
                """, [.text(SQLArray.bigints(keys.lazy.map(\.id))), .text(table.qualifiedName)])
            for row in result.rows { found.insert(OutboxRowKey(table: table, id: try row.int64("outbox_id"))) }
        }
        return found
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
