@testable import Consumers
import Testing

@Suite("A consumer batch is planned once and its outcomes follow what the database did")
struct BatchPlanTests {
    private static func booking(_ id: Int64, booking: Int64 = 1) -> ParsedMessage {
        .booking(outboxID: id, event: BookingEffect(outboxId: id, bookingId: booking, seatId: 2, userId: 3), payload: Array("{}".utf8))
    }

    private static func payment(_ id: Int64, token: Int64 = 9) -> ParsedMessage {
        .payment(outboxID: id, event: PaymentEffect(outboxId: id, paymentId: 4, bookingId: 1, userId: 3, amount: 100, tokenId: token))
    }

    @Test("each outbox row is tried once, with the first copy's effect; ids go to the database distinct and ascending")
    func firstCopyCarriesTheEffect() {
        let plan = BatchPlan([Self.booking(7, booking: 70), Self.payment(3), .poison(reason: "unparseable", detail: "x"),
                              Self.booking(7, booking: 71), Self.booking(5)])
        #expect(plan.ids == [3, 5, 7])
        #expect(plan.bookings.map(\.id) == [7, 5])
        #expect(plan.bookings.first?.event.bookingId == 70)
        #expect(plan.payments.map(\.id) == [3])
    }

    @Test("applied, duplicate (already COMPLETE, or a second copy in the batch), missing row and poison, aligned with the batch")
    func outcomes() {
        let plan = BatchPlan([Self.booking(1), Self.payment(2), Self.booking(1), Self.booking(3), Self.booking(4),
                              .poison(reason: "unknown_type", detail: "d")])
        // Row 3 exists but was COMPLETE already; row 4 does not exist (or is not visible yet).
        let outcomes = plan.outcomes(existing: [1, 2, 3], completed: [1, 2])
        #expect(outcomes == [
            .applied(type: "BOOK_SAVE"), .applied(type: "PAYMENT_SAVE"), .duplicate, .duplicate,
            .poison(reason: "missing_outbox_row", detail: "outbox row 4 does not exist"),
            .poison(reason: "unknown_type", detail: "d"),
        ])
        #expect(outcomes.filter(\.isMissingRow).count == 1)
    }

    @Test("a missing row whose effect is recorded (retention deleted the row) is a duplicate; only the rest are missing")
    func appliedWithoutRow() {
        let plan = BatchPlan([Self.booking(4), Self.payment(6), Self.booking(8), Self.booking(4)])
        #expect(plan.missing(existing: [8]) == [4, 6])
        #expect(plan.outcomes(existing: [8], completed: [8], appliedWithoutRow: [4]) == [
            .duplicate, .poison(reason: "missing_outbox_row", detail: "outbox row 6 does not exist"),
            .applied(type: "BOOK_SAVE"), .duplicate,
        ])
    }

    @Test("a batch of poison only sends nothing to the database")
    func poisonOnly() {
        let plan = BatchPlan([.poison(reason: "unparseable", detail: "a"), .poison(reason: "unknown_type", detail: "b")])
        #expect(plan.ids.isEmpty && plan.bookings.isEmpty && plan.payments.isEmpty)
        #expect(plan.outcomes(existing: [], completed: []) == [.poison(reason: "unparseable", detail: "a"), .poison(reason: "unknown_type", detail: "b")])
    }

    @Test("array literals: numbers bare; text quoted with quotes and backslashes escaped, so commas, braces and NULL stay data")
    func arrayLiterals() {
        #expect(SQLArray.bigints([Int64]()) == "{}")
        #expect(SQLArray.bigints([1, -2, Int64.max]) == "{1,-2,9223372036854775807}")
        #expect(SQLArray.texts([[UInt8]]()) == "{}")
        let values = [#"{"a":"x\"y"}"#, #"back\slash"#, "NULL", "a,b {c}", " spaced ", "é🎫", ""]
        #expect(SQLArray.texts(values.map { Array($0.utf8) })
                == #"{"{\"a\":\"x\\\"y\"}","back\\slash","NULL","a,b {c}"," spaced ","é🎫",""}"#)
    }
}
