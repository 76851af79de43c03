import Foundation
import KafkaClient
import Logging
import PostgresClient
import Schema

/// What happened to one message inside the batch transaction.
enum ApplyOutcome: Equatable {
    case applied(type: String)
    /// The row was already COMPLETE: a replay, a relay duplicate or a sweeper resend.
    case duplicate
    /// The message cannot be applied, ever; it goes to the dead-letter topic.
    case poison(reason: String, detail: String)

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

/// Applies effects inside the caller's transaction: status guard, PUBLISHED, effect,
/// COMPLETE. The guard (`SELECT … FOR UPDATE` on the outbox row) serializes concurrent
/// consumers of the same row and makes a replay a no-op.
///
/// Two paths with the same outcome. `applyBatch` does the whole batch in a handful of
/// set-based statements (a few round trips per batch instead of six per message); when the
/// database refuses a batch's data, the caller rolls back and falls back to `apply`, one
/// message per savepoint, which isolates the message at fault.
struct EffectApplier {
    var logger: Logger

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
        let decoder = JSONDecoder()
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
            return .poison(reason: "missing_outbox_row", detail: "outbox row \(outboxID) does not exist")
        }
        if status == "COMPLETE" { return .duplicate }
        // As the original service did on receipt, then the effect, then COMPLETE: all in
        // this transaction, so the flips are only visible together with the effect.
        try connection.queryBlocking("UPDATE outbox SET status = 'PUBLISHED' WHERE outbox_id = $1", [.int(outboxID)])
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

    /// Outcomes aligned with `batch`. Throws what the database threw; the caller decides
    /// between retrying (transient) and falling back to `apply` per message (data).
    func applyBatch(_ batch: [KafkaMessage], on connection: PGConnection) throws -> [ApplyOutcome] {
        let parsed = batch.map(parse)
        let ids = Set(parsed.compactMap(\.outboxID))
        var status: [Int64: String] = [:]
        if !ids.isEmpty {
            // Locks in id order, so two consumers holding overlapping batches (briefly,
            // around a rebalance) cannot deadlock.
            let rows = try connection.queryBlocking(
                "SELECT outbox_id, status FROM outbox WHERE outbox_id = ANY($1::bigint[]) ORDER BY outbox_id FOR UPDATE",
                [.text(Self.arrayLiteral(ids.sorted()))]).rows
            for row in rows { status[try row.int64("outbox_id")] = try row.string("status") }
        }

        var outcomes: [ApplyOutcome] = []
        outcomes.reserveCapacity(batch.count)
        var applying: [Int64] = [], bookings: [(Int64, BookingEffect, [UInt8])] = [], payments: [(Int64, PaymentEffect)] = []
        var seen = Set<Int64>()
        for message in parsed {
            if let poison = message.poisonOutcome {
                outcomes.append(poison)
                continue
            }
            guard let id = message.outboxID else { preconditionFailure("an effect without an outbox id") }
            guard let current = status[id] else {
                outcomes.append(.poison(reason: "missing_outbox_row", detail: "outbox row \(id) does not exist"))
                continue
            }
            // A second copy in the same batch is a duplicate of the first, as it would be
            // one batch later.
            if current == "COMPLETE" || !seen.insert(id).inserted {
                outcomes.append(.duplicate)
                continue
            }
            applying.append(id)
            switch message {
            case .booking(_, let event, let payload): bookings.append((id, event, payload))
            case .payment(_, let event): payments.append((id, event))
            case .poison: break
            }
            outcomes.append(.applied(type: message.type))
        }
        guard !applying.isEmpty else { return outcomes }

        let idArray = PGValue.text(Self.arrayLiteral(applying))
        try connection.queryBlocking("UPDATE outbox SET status = 'PUBLISHED' WHERE outbox_id = ANY($1::bigint[])", [idArray])
        if !bookings.isEmpty {
            try connection.queryBlocking("""
                INSERT INTO booking_record (outbox_id, booking_id, seat_id, user_id, payload)
                SELECT id, booking_id, seat_id, user_id, payload
                FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, booking_id bigint, seat_id bigint, user_id bigint, payload jsonb)
                ON CONFLICT (outbox_id) DO NOTHING
                """, [.text(Self.bookingRecords(bookings))])
        }
        if !payments.isEmpty {
            try connection.queryBlocking("""
                INSERT INTO payment_ledger (outbox_id, payment_id, booking_id, user_id, amount)
                SELECT id, payment_id, booking_id, user_id, amount
                FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, payment_id bigint, booking_id bigint, user_id bigint, amount bigint)
                ON CONFLICT (outbox_id) DO NOTHING
                """, [.text(Self.ledgerRecords(payments))])
            try connection.queryBlocking("UPDATE wait_token SET status = 'EXPIRED' WHERE token_id = ANY($1::bigint[])",
                                         [.text(Self.arrayLiteral(payments.map(\.1.tokenId)))])
        }
        try connection.queryBlocking("UPDATE outbox SET status = 'COMPLETE' WHERE outbox_id = ANY($1::bigint[])", [idArray])
        return outcomes
    }

    /// `{1,2,3}`: a bigint[] parameter (numbers only, so no quoting).
    static func arrayLiteral(_ values: [Int64]) -> String {
        "{" + values.map(String.init).joined(separator: ",") + "}"
    }

    /// One JSON array for `jsonb_to_recordset`. The payload goes in as the JSON it already
    /// is (the decoder accepted it), so it is stored byte for byte as the relay sent it.
    static func bookingRecords(_ rows: [(Int64, BookingEffect, [UInt8])]) -> String {
        jsonArray(rows) { id, event, payload in
            #"{"id":\#(id),"booking_id":\#(event.bookingId),"seat_id":\#(event.seatId),"user_id":\#(event.userId),"payload":"#
                + String(decoding: payload, as: UTF8.self) + "}"
        }
    }

    static func ledgerRecords(_ rows: [(Int64, PaymentEffect)]) -> String {
        jsonArray(rows) { id, p in
            return #"{"id":\#(id),"payment_id":\#(p.paymentId),"booking_id":\#(p.bookingId),"user_id":\#(p.userId),"amount":\#(p.amount)}"#
        }
    }

    private static func jsonArray<Row>(_ rows: [Row], _ object: (Row) -> String) -> String {
        "[" + rows.map(object).joined(separator: ",") + "]"
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
