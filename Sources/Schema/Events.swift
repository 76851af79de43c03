/// The topics and event types the booking domain writes. Consumers route by topic, as the
/// original service's listeners did, and by type when a route renamed the topic.
public enum EventType {
    public static let bookSave = "BOOK_SAVE"
    public static let paymentSave = "PAYMENT_SAVE"
    /// The `type` values the original Spring service wrote (topic BOOK_SAVE / PAYMENT_SAVE).
    public static let originalBook = "BOOK"
    public static let originalPayment = "PAYMENT"
    /// Every `type` a consumer accepts for each effect.
    public static let bookTypes: Set<String> = [bookSave, originalBook]
    public static let paymentTypes: Set<String> = [paymentSave, originalPayment]
}

/// The booking as carried in events (the original service's `book` object).
public struct BookInfo: Codable, Sendable, Equatable {
    public var bookingId: Int64
    public var seatId: Int64
    public var userId: Int64
    public var price: Int64
    public var status: String

    public init(bookingId: Int64, seatId: Int64, userId: Int64, price: Int64, status: String) {
        self.bookingId = bookingId; self.seatId = seatId; self.userId = userId; self.price = price; self.status = status
    }
}

/// The queue token that admitted the user.
public struct WaitTokenInfo: Codable, Sendable, Equatable {
    public var tokenId: Int64
    public var userId: Int64
    public var token: String
    public var status: String

    public init(tokenId: Int64, userId: Int64, token: String, status: String) {
        self.tokenId = tokenId; self.userId = userId; self.token = token; self.status = status
    }
}

public struct PaymentInfo: Codable, Sendable, Equatable {
    public var paymentId: Int64
    public var bookingId: Int64
    public var userId: Int64
    public var amount: Int64

    public init(paymentId: Int64, bookingId: Int64, userId: Int64, amount: Int64) {
        self.paymentId = paymentId; self.bookingId = bookingId; self.userId = userId; self.amount = amount
    }
}

/// `BOOK_SAVE`: a seat was reserved. `outboxId` and `messageQueueKey` are filled in by
/// `Outbox.enqueue` (nil while the event is being built).
public struct BookEvent: Codable, Sendable, Equatable {
    public var book: BookInfo
    public var waitToken: WaitTokenInfo
    public var outboxId: Int64?
    public var messageQueueKey: String?

    public init(book: BookInfo, waitToken: WaitTokenInfo, outboxId: Int64? = nil, messageQueueKey: String? = nil) {
        self.book = book; self.waitToken = waitToken; self.outboxId = outboxId; self.messageQueueKey = messageQueueKey
    }

    public static func key(seatId: Int64) -> String { "BOOK:\(seatId)" }
}

/// `PAYMENT_SAVE`: a booking was paid. Carries the booking it pays and the token to expire.
public struct PaymentEvent: Codable, Sendable, Equatable {
    public var payment: PaymentInfo
    public var book: BookInfo
    public var waitToken: WaitTokenInfo
    public var outboxId: Int64?
    public var messageQueueKey: String?

    public init(payment: PaymentInfo, book: BookInfo, waitToken: WaitTokenInfo, outboxId: Int64? = nil, messageQueueKey: String? = nil) {
        self.payment = payment; self.book = book; self.waitToken = waitToken
        self.outboxId = outboxId; self.messageQueueKey = messageQueueKey
    }

    public static func key(bookingId: Int64) -> String { "PAYMENT:\(bookingId)" }
}
