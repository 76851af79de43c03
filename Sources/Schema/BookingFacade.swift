import Foundation
public import PostgresClient

/// Why a reservation or a payment was refused. Each leaves the database untouched.
public enum BookingError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownSeat(seatId: Int64)
    case seatTaken(seatId: Int64)
    case tokenInvalid(token: String)
    case tokenExpired(token: String)
    case unknownBooking(bookingId: Int64)
    case bookingNotPayable(bookingId: Int64, status: String)
    case insufficientBalance(userId: Int64, balance: Int64, price: Int64)

    public var description: String {
        switch self {
        case .unknownSeat(let id): return "seat \(id) does not exist"
        case .seatTaken(let id): return "seat \(id) is already booked"
        case .tokenInvalid: return "the wait token is unknown or belongs to another user"
        case .tokenExpired: return "the wait token has expired; queue again"
        case .unknownBooking(let id): return "booking \(id) does not exist"
        case .bookingNotPayable(let id, let status): return "booking \(id) is \(status), not RESERVED"
        case .insufficientBalance(let user, let balance, let price):
            return "user \(user) has \(balance) points; the booking costs \(price)"
        }
    }
}

/// The booking service's write paths, each one transaction that changes the domain and
/// enqueues its outbox event together (the demo, the benchmarks and the tests drive it).
public struct BookingFacade: Sendable {
    public init() {}

    public struct Reservation: Sendable, Equatable {
        public var bookingId: Int64
        public var outboxId: Int64
        public var event: BookEvent
    }

    public struct Receipt: Sendable, Equatable {
        public var paymentId: Int64
        public var outboxId: Int64
        public var event: PaymentEvent
    }

    /// Holds the seat, inserts the booking and a `BOOK_SAVE` event keyed `BOOK:<seatId>`.
    public func reserveSeat(on connection: PGConnection, seatId: Int64, userId: Int64, token: String) async throws -> Reservation {
        try await connection.transaction { conn in
            let waitToken = try await activeToken(conn, token: token, userId: userId)
            let held = try await conn.query(
                "UPDATE seat SET status = 'HELD' WHERE seat_id = $1 AND status = 'AVAILABLE' RETURNING price",
                [.int(seatId)])
            guard let seat = held.rows.first else {
                let exists = try await conn.query("SELECT 1 FROM seat WHERE seat_id = $1", [.int(seatId)])
                throw exists.rows.isEmpty ? BookingError.unknownSeat(seatId: seatId) : BookingError.seatTaken(seatId: seatId)
            }
            let price = try seat.int64("price")
            let booking: PGResult
            do {
                booking = try await conn.query(
                    "INSERT INTO booking (seat_id, user_id, token_id, price) VALUES ($1, $2, $3, $4) RETURNING booking_id",
                    [.int(seatId), .int(userId), .int(waitToken.tokenId), .int(price)])
            } catch let error as PGError where error.sqlState == PGError.State.uniqueViolation {
                throw BookingError.seatTaken(seatId: seatId)
            }
            let bookingId = try booking.single().int64("booking_id")
            var event = BookEvent(book: BookInfo(bookingId: bookingId, seatId: seatId, userId: userId, price: price, status: "RESERVED"),
                                  waitToken: waitToken)
            let key = BookEvent.key(seatId: seatId)
            let outboxId = try await Outbox.enqueue(on: conn, topic: EventType.bookSave, key: key, type: EventType.bookSave, event: event)
            event.outboxId = outboxId
            event.messageQueueKey = key
            return Reservation(bookingId: bookingId, outboxId: outboxId, event: event)
        }
    }

    /// Debits the user's points, records the payment, marks the booking PAID and the seat
    /// SOLD, and enqueues a `PAYMENT_SAVE` event.
    public func pay(on connection: PGConnection, bookingId: Int64, userId: Int64, token: String) async throws -> Receipt {
        try await connection.transaction { conn in
            let waitToken = try await activeToken(conn, token: token, userId: userId)
            let found = try await conn.query(
                "SELECT seat_id, price, status FROM booking WHERE booking_id = $1 AND user_id = $2 FOR UPDATE",
                [.int(bookingId), .int(userId)])
            guard let booking = found.rows.first else { throw BookingError.unknownBooking(bookingId: bookingId) }
            let status = try booking.string("status"), price = try booking.int64("price"), seatId = try booking.int64("seat_id")
            guard status == "RESERVED" else { throw BookingError.bookingNotPayable(bookingId: bookingId, status: status) }
            let debited = try await conn.query(
                "UPDATE app_user SET point_balance = point_balance - $2 WHERE user_id = $1 AND point_balance >= $2 RETURNING point_balance",
                [.int(userId), .int(price)])
            guard !debited.rows.isEmpty else {
                let balance = try await conn.query("SELECT point_balance FROM app_user WHERE user_id = $1", [.int(userId)])
                throw BookingError.insufficientBalance(userId: userId, balance: try balance.rows.first?.int64("point_balance") ?? 0, price: price)
            }
            let payment = try await conn.query(
                "INSERT INTO payment (booking_id, user_id, amount) VALUES ($1, $2, $3) RETURNING payment_id",
                [.int(bookingId), .int(userId), .int(price)])
            let paymentId = try payment.single().int64("payment_id")
            try await conn.query("UPDATE booking SET status = 'PAID' WHERE booking_id = $1", [.int(bookingId)])
            try await conn.query("UPDATE seat SET status = 'SOLD' WHERE seat_id = $1", [.int(seatId)])
            var event = PaymentEvent(
                payment: PaymentInfo(paymentId: paymentId, bookingId: bookingId, userId: userId, amount: price),
                book: BookInfo(bookingId: bookingId, seatId: seatId, userId: userId, price: price, status: "PAID"),
                waitToken: waitToken)
            let key = PaymentEvent.key(bookingId: bookingId)
            let outboxId = try await Outbox.enqueue(on: conn, topic: EventType.paymentSave, key: key, type: EventType.paymentSave, event: event)
            event.outboxId = outboxId
            event.messageQueueKey = key
            return Receipt(paymentId: paymentId, outboxId: outboxId, event: event)
        }
    }

    private func activeToken(_ conn: PGConnection, token: String, userId: Int64) async throws -> WaitTokenInfo {
        let found = try await conn.query(
            "SELECT token_id, status, expires_at <= now() AS expired FROM wait_token WHERE token::text = $1 AND user_id = $2",
            [.text(token), .int(userId)])
        guard let row = found.rows.first else { throw BookingError.tokenInvalid(token: token) }
        guard try row.string("status") == "ACTIVE", try !row.bool("expired") else { throw BookingError.tokenExpired(token: token) }
        return WaitTokenInfo(tokenId: try row.int64("token_id"), userId: userId, token: token, status: "ACTIVE")
    }
}
