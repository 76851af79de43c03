/// One batch, planned: the effect to try for each outbox row (the first copy of a row in the
/// batch carries it), and, once the database has said which rows exist and which this
/// transaction completed, every message's outcome. Pure.
struct BatchPlan {
    let messages: [ParsedMessage]
    /// Distinct outbox ids, ascending: the order the guard statement locks them in.
    let ids: [Int64]
    let bookings: [(id: Int64, event: BookingEffect, payload: [UInt8])]
    let payments: [(id: Int64, event: PaymentEffect)]

    init(_ messages: [ParsedMessage]) {
        var seen = Set<Int64>()
        var bookings: [(id: Int64, event: BookingEffect, payload: [UInt8])] = []
        var payments: [(id: Int64, event: PaymentEffect)] = []
        for message in messages {
            switch message {
            case .booking(let id, let event, let payload):
                if seen.insert(id).inserted { bookings.append((id, event, payload)) }
            case .payment(let id, let event):
                if seen.insert(id).inserted { payments.append((id, event)) }
            case .poison:
                break
            }
        }
        self.messages = messages
        self.ids = seen.sorted()
        self.bookings = bookings
        self.payments = payments
    }

    /// The ids the database did not find in `existing`: the only ones worth looking up in
    /// the effect tables.
    func missing(existing: Set<Int64>) -> [Int64] { ids.filter { !existing.contains($0) } }

    /// Outcomes aligned with the batch. `existing`: the rows the transaction could see;
    /// `completed`: the rows it moved to COMPLETE (a row already COMPLETE is not among them);
    /// `appliedWithoutRow`: missing rows whose effect is in the effect tables (applied, then
    /// the row was deleted by retention), which are duplicates, not poison. A second copy
    /// of a row in the batch is a duplicate of the first, as it would be one batch later.
    func outcomes(existing: Set<Int64>, completed: Set<Int64>, appliedWithoutRow: Set<Int64> = []) -> [ApplyOutcome] {
        var credited = Set<Int64>()
        return messages.map { message in
            if let poison = message.poisonOutcome { return poison }
            guard let id = message.outboxID else { preconditionFailure("an effect without an outbox id") }
            guard existing.contains(id) else {
                return appliedWithoutRow.contains(id) ? .duplicate : ApplyOutcome.missingRow(id)
            }
            if completed.contains(id), credited.insert(id).inserted { return .applied(type: message.type) }
            return .duplicate
        }
    }
}
