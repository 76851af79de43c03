/// What a booking effect needs from a BOOK_SAVE payload. Both the relay-era field names and
/// the original service's are accepted: `book.bookingId` or `book.bookId`. Other fields are
/// ignored here (the whole payload is stored in `booking_record.payload`).
struct BookingEffect: Decodable, Equatable {
    var outboxId: Int64?
    var bookingId: Int64
    var seatId: Int64
    var userId: Int64

    init(outboxId: Int64?, bookingId: Int64, seatId: Int64, userId: Int64) {
        self.outboxId = outboxId; self.bookingId = bookingId; self.seatId = seatId; self.userId = userId
    }

    init(from decoder: any Decoder) throws {
        let event = try decoder.container(keyedBy: EventKeys.self)
        outboxId = try event.decodeIfPresent(Int64.self, forKey: .outboxId)
        let book = try event.nestedContainer(keyedBy: BookKeys.self, forKey: .book)
        bookingId = try book.decodeBookingID()
        seatId = try book.decode(Int64.self, forKey: .seatId)
        userId = try book.decode(Int64.self, forKey: .userId)
    }
}

/// What a payment effect needs from a PAYMENT_SAVE payload: the payment (its `bookingId`
/// or the original `bookId`) and the wait token to expire.
struct PaymentEffect: Decodable, Equatable {
    var outboxId: Int64?
    var paymentId: Int64
    var bookingId: Int64
    var userId: Int64
    var amount: Int64
    var tokenId: Int64

    init(outboxId: Int64?, paymentId: Int64, bookingId: Int64, userId: Int64, amount: Int64, tokenId: Int64) {
        self.outboxId = outboxId; self.paymentId = paymentId; self.bookingId = bookingId
        self.userId = userId; self.amount = amount; self.tokenId = tokenId
    }

    init(from decoder: any Decoder) throws {
        let event = try decoder.container(keyedBy: EventKeys.self)
        outboxId = try event.decodeIfPresent(Int64.self, forKey: .outboxId)
        let payment = try event.nestedContainer(keyedBy: PaymentKeys.self, forKey: .payment)
        paymentId = try payment.decode(Int64.self, forKey: .paymentId)
        bookingId = try payment.decodeBookingID()
        userId = try payment.decode(Int64.self, forKey: .userId)
        amount = try payment.decode(Int64.self, forKey: .amount)
        let token = try event.nestedContainer(keyedBy: TokenKeys.self, forKey: .waitToken)
        tokenId = try token.decode(Int64.self, forKey: .tokenId)
    }
}

private enum EventKeys: String, CodingKey { case outboxId, book, payment, waitToken }
private enum BookKeys: String, CodingKey, BookingIDKeys { case bookingId, bookId, seatId, userId }
private enum PaymentKeys: String, CodingKey, BookingIDKeys { case paymentId, bookingId, bookId, userId, amount }
private enum TokenKeys: String, CodingKey { case tokenId }

private protocol BookingIDKeys: CodingKey {
    static var bookingId: Self { get }
    static var bookId: Self { get }
}

extension KeyedDecodingContainer where Key: BookingIDKeys {
    /// `bookingId`, or the original service's `bookId`; both present must agree.
    fileprivate func decodeBookingID() throws -> Int64 {
        let current = try decodeIfPresent(Int64.self, forKey: .bookingId)
        let original = try decodeIfPresent(Int64.self, forKey: .bookId)
        switch (current, original) {
        case let (id?, nil), let (nil, id?): return id
        case let (a?, b?) where a == b: return a
        case let (a?, b?):
            throw DecodingError.dataCorruptedError(forKey: .bookingId, in: self, debugDescription: "bookingId \(a) and bookId \(b) disagree")
        case (nil, nil):
            throw DecodingError.keyNotFound(Key.bookingId, .init(codingPath: codingPath, debugDescription: "neither bookingId nor bookId is present"))
        }
    }
}
