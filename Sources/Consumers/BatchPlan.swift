import PGOutput

/// One batch, planned: the effect to try for each outbox row (the first copy of a row in the
/// batch carries it), grouped by table, and, once the database has said which rows exist
/// and which this transaction completed, every message's outcome. Pure.
struct BatchPlan {
    /// One table's share of the batch: what that table's statement sends.
    struct TablePart {
        let table: OutboxTable
        /// Distinct outbox ids, ascending: the order the guard statement locks them in.
        fileprivate(set) var ids: [Int64] = []
        fileprivate(set) var bookings: [(id: Int64, event: BookingEffect, payload: [UInt8])] = []
        fileprivate(set) var payments: [(id: Int64, event: PaymentEffect)] = []
    }

    let messages: [ParsedMessage]
    /// One part per table the batch touches, in table order: the statements run (and lock)
    /// in this order, so two consumers holding overlapping batches lock alike. A batch of
    /// one table, the usual case, has one part: one statement, one round trip.
    let parts: [TablePart]

    init(_ messages: [ParsedMessage]) {
        var seen = Set<OutboxRowKey>()
        var parts: [TablePart] = []
        func part(_ table: OutboxTable) -> Int {
            if let index = parts.firstIndex(where: { $0.table == table }) { return index }
            parts.append(TablePart(table: table))
            return parts.count - 1
        }
        for message in messages {
            switch message {
            case .booking(let row, let event, let payload):
                if seen.insert(row).inserted { parts[part(row.table)].bookings.append((row.id, event, payload)) }
            case .payment(let row, let event):
                if seen.insert(row).inserted { parts[part(row.table)].payments.append((row.id, event)) }
            case .poison:
                break
            }
        }
        for index in parts.indices {
            parts[index].ids = (parts[index].bookings.map(\.id) + parts[index].payments.map(\.id)).sorted()
        }
        self.messages = messages
        self.parts = parts.sorted { $0.table < $1.table }
    }

    /// Whether the batch has nothing for the database (poison only, or empty).
    var isEmpty: Bool { parts.isEmpty }

    /// The rows the database did not find in `existing`: the only ones worth looking up in
    /// the effect tables.
    func missing(existing: Set<OutboxRowKey>) -> [OutboxRowKey] {
        parts.flatMap { part in part.ids.lazy.map { OutboxRowKey(table: part.table, id: $0) }.filter { !existing.contains($0) } }
    }

    /// Outcomes aligned with the batch. `existing`: the rows the transaction could see;
    /// `completed`: the rows it moved to COMPLETE (a row already COMPLETE is not among them);
    /// `appliedWithoutRow`: missing rows whose effect is in the effect tables (applied, then
    /// the row was deleted by retention), which are duplicates, not poison. A second copy
    /// of a row in the batch is a duplicate of the first, as it would be one batch later.
    func outcomes(existing: Set<OutboxRowKey>, completed: Set<OutboxRowKey>,
                  appliedWithoutRow: Set<OutboxRowKey> = []) -> [ApplyOutcome] {
        var credited = Set<OutboxRowKey>()
        return messages.map { message in
            if let poison = message.poisonOutcome { return poison }
            guard let row = message.row else { preconditionFailure("an effect without an outbox row") }
            guard existing.contains(row) else {
                return appliedWithoutRow.contains(row) ? .duplicate : ApplyOutcome.missingRow(row)
            }
            if completed.contains(row), credited.insert(row).inserted { return .applied(type: message.type) }
            return .duplicate
        }
    }
}
