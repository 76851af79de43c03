@testable import Consumers
import PGOutput
import Testing

@Suite("A consumer batch is planned once and its outcomes follow what the database did")
struct BatchPlanTests {
    private static let teamA = try! OutboxTable(parsing: "team_a.outbox")

    private static func booking(_ id: Int64, booking: Int64 = 1, in table: OutboxTable = .default) -> ParsedMessage {
        .booking(row: OutboxRowKey(table: table, id: id), event: BookingEffect(outboxId: id, bookingId: booking, seatId: 2, userId: 3),
                 payload: Array("{}".utf8))
    }

    private static func payment(_ id: Int64, token: Int64 = 9, in table: OutboxTable = .default) -> ParsedMessage {
        .payment(row: OutboxRowKey(table: table, id: id),
                 event: PaymentEffect(outboxId: id, paymentId: 4, bookingId: 1, userId: 3, amount: 100, tokenId: token))
    }

    /// Rows of one table, for the sets the database reports.
    private static func rows(_ ids: Int64..., in table: OutboxTable = .default) -> Set<OutboxRowKey> {
        Set(ids.map { OutboxRowKey(table: table, id: $0) })
    }

    @Test("each outbox row is tried once, with the first copy's effect; ids go to the database distinct and ascending")
    func firstCopyCarriesTheEffect() {
        let plan = BatchPlan([Self.booking(7, booking: 70), Self.payment(3), .poison(reason: "unparseable", detail: "x"),
                              Self.booking(7, booking: 71), Self.booking(5)])
        #expect(plan.parts.count == 1)
        let part = plan.parts[0]
        #expect(part.table == .default)
        #expect(part.ids == [3, 5, 7])
        #expect(part.bookings.map(\.id) == [7, 5])
        #expect(part.bookings.first?.event.bookingId == 70)
        #expect(part.payments.map(\.id) == [3])
    }

    @Test("applied, duplicate (already COMPLETE, or a second copy in the batch), missing row and poison, aligned with the batch")
    func outcomes() {
        let plan = BatchPlan([Self.booking(1), Self.payment(2), Self.booking(1), Self.booking(3), Self.booking(4),
                              .poison(reason: "unknown_type", detail: "d")])
        // Row 3 exists but was COMPLETE already; row 4 does not exist (or is not visible yet).
        let outcomes = plan.outcomes(existing: Self.rows(1, 2, 3), completed: Self.rows(1, 2))
        #expect(outcomes == [
            .applied(type: "BOOK_SAVE"), .applied(type: "PAYMENT_SAVE"), .duplicate, .duplicate,
            .poison(reason: "missing_outbox_row", detail: "public.outbox row 4 does not exist"),
            .poison(reason: "unknown_type", detail: "d"),
        ])
        #expect(outcomes.filter(\.isMissingRow).count == 1)
    }

    @Test("a missing row whose effect is recorded (retention deleted the row) is a duplicate; only the rest are missing")
    func appliedWithoutRow() {
        let plan = BatchPlan([Self.booking(4), Self.payment(6), Self.booking(8), Self.booking(4)])
        #expect(plan.missing(existing: Self.rows(8)) == [OutboxRowKey(table: .default, id: 4), OutboxRowKey(table: .default, id: 6)])
        #expect(plan.outcomes(existing: Self.rows(8), completed: Self.rows(8), appliedWithoutRow: Self.rows(4)) == [
            .duplicate, .poison(reason: "missing_outbox_row", detail: "public.outbox row 6 does not exist"),
            .applied(type: "BOOK_SAVE"), .duplicate,
        ])
    }

    @Test("a batch of poison only sends nothing to the database")
    func poisonOnly() {
        let plan = BatchPlan([.poison(reason: "unparseable", detail: "a"), .poison(reason: "unknown_type", detail: "b")])
        #expect(plan.isEmpty && plan.parts.isEmpty)
        #expect(plan.outcomes(existing: [], completed: []) == [.poison(reason: "unparseable", detail: "a"), .poison(reason: "unknown_type", detail: "b")])
    }

    /// Ids repeat across tables (each has its own sequence): row 5 of public.outbox and row 5
    /// of team_a.outbox are two rows, each with its own effect and its own outcome.
    @Test("a batch mixing tables is grouped by table, in table order; the same id in two tables is two rows, each applied once")
    func groupedByTable() {
        let plan = BatchPlan([Self.booking(5, booking: 50, in: Self.teamA), Self.booking(5, booking: 51), Self.payment(7, in: Self.teamA),
                              Self.booking(5, booking: 52, in: Self.teamA), Self.payment(2)])
        #expect(plan.parts.map(\.table) == [.default, Self.teamA], "public sorts before team_a")
        #expect(plan.parts[0].ids == [2, 5] && plan.parts[0].bookings.map(\.event.bookingId) == [51] && plan.parts[0].payments.map(\.id) == [2])
        #expect(plan.parts[1].ids == [5, 7] && plan.parts[1].bookings.map(\.event.bookingId) == [50] && plan.parts[1].payments.map(\.id) == [7])
        // public.outbox row 5 was COMPLETE already; team_a.outbox row 5 is completed now.
        let existing = Self.rows(2, 5).union(Self.rows(5, 7, in: Self.teamA))
        let completed = Self.rows(2).union(Self.rows(5, 7, in: Self.teamA))
        #expect(plan.missing(existing: existing).isEmpty)
        #expect(plan.outcomes(existing: existing, completed: completed) == [
            .applied(type: "BOOK_SAVE"), .duplicate, .applied(type: "PAYMENT_SAVE"), .duplicate, .applied(type: "PAYMENT_SAVE"),
        ])
        // A row missing in one table is missing there only, named with its table.
        let withoutTeamARow7 = existing.subtracting(Self.rows(7, in: Self.teamA))
        #expect(plan.missing(existing: withoutTeamARow7) == [OutboxRowKey(table: Self.teamA, id: 7)])
        #expect(plan.outcomes(existing: withoutTeamARow7, completed: completed)[2]
                == .poison(reason: "missing_outbox_row", detail: "team_a.outbox row 7 does not exist"))
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
