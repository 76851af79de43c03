@testable import Consumers
import Foundation
import Testing

@Suite("Consumers route by topic and accept the original service's shapes")
struct EventRouteTests {
    @Test("accepted topic and type combinations", arguments: [
        ("BOOK_SAVE", "BOOK_SAVE", EventKind.booking), ("BOOK_SAVE", "BOOK", .booking), ("BOOK_SAVE", nil, .booking),
        ("PAYMENT_SAVE", "PAYMENT_SAVE", .payment), ("PAYMENT_SAVE", "PAYMENT", .payment), ("PAYMENT_SAVE", nil, .payment),
        // A topic renamed by topic-routes: the type decides.
        ("bookings.v1", "BOOK", .booking), ("payments.v1", "PAYMENT_SAVE", .payment),
    ] as [(String, String?, EventKind)])
    func accepted(topic: String, type: String?, kind: EventKind) {
        #expect(EventRoute.decide(topic: topic, type: type) == .success(kind))
    }

    @Test("refused combinations, with the reason", arguments: [
        ("BOOK_SAVE", "PAYMENT", "type_mismatch"), ("PAYMENT_SAVE", "BOOK_SAVE", "type_mismatch"),
        ("BOOK_SAVE", "BOOK_CANCEL", "unknown_type"), ("BOOK_SAVE", "", "unknown_type"),
        ("bookings.v1", "NO_SUCH_TYPE", "unknown_type"), ("bookings.v1", nil, "unknown_type"),
    ] as [(String, String?, String)])
    func refused(topic: String, type: String?, reason: String) {
        guard case .failure(let refused) = EventRoute.decide(topic: topic, type: type) else {
            Issue.record("\(topic)/\(type ?? "nil") was accepted")
            return
        }
        #expect(refused.reason == reason)
        #expect(refused.detail.contains("accepted: topics BOOK_SAVE"), "the refusal says what would be accepted")
    }

    @Test("the original BookEvent (book.bookId) and today's (book.bookingId) decode to the same effect")
    func bookingShapes() throws {
        let original = #"{"book":{"bookId":7,"seatId":3,"userId":5,"price":100,"status":"RESERVED"},"waitToken":{"tokenId":9},"outboxId":null,"messageQueueKey":"BOOK:3"}"#
        let today = #"{"book":{"bookingId":7,"seatId":3,"userId":5,"price":100,"status":"RESERVED"},"waitToken":{"tokenId":9,"userId":5,"token":"t","status":"ACTIVE"},"outboxId":11,"messageQueueKey":"BOOK:3"}"#
        let a = try JSONDecoder().decode(BookingEffect.self, from: Data(original.utf8))
        let b = try JSONDecoder().decode(BookingEffect.self, from: Data(today.utf8))
        #expect(a == BookingEffect(outboxId: nil, bookingId: 7, seatId: 3, userId: 5))
        #expect(b == BookingEffect(outboxId: 11, bookingId: 7, seatId: 3, userId: 5))
    }

    @Test("the original PaymentEvent (payment.bookId) decodes")
    func paymentShapes() throws {
        let original = #"{"payment":{"paymentId":2,"bookId":7,"userId":5,"amount":100},"book":{"bookId":7,"seatId":3,"userId":5},"waitToken":{"tokenId":9}}"#
        #expect(try JSONDecoder().decode(PaymentEffect.self, from: Data(original.utf8))
                == PaymentEffect(outboxId: nil, paymentId: 2, bookingId: 7, userId: 5, amount: 100, tokenId: 9))
    }

    @Test("bookingId and bookId that disagree, or neither, are refused", arguments: [
        #"{"book":{"bookingId":7,"bookId":8,"seatId":3,"userId":5}}"#, #"{"book":{"seatId":3,"userId":5}}"#,
    ])
    func conflicting(payload: String) {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(BookingEffect.self, from: Data(payload.utf8)) }
    }
}
