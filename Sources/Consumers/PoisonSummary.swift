/// One log line's worth of a batch's dead letters. A warning per poison message flooded the
/// log at the dead-letter rate (2,500-3,000 a second when a fresh group replays old
/// messages whose rows are gone); the dead-letter topic keeps each message's topic,
/// partition, offset and reason in its headers, so the log needs only the counts and where.
struct PoisonSummary: Equatable {
    /// Reasons with their counts, most frequent first: `missing_outbox_row=250,unknown_type=2`.
    var reasons: String
    /// Offset ranges per topic and partition, in first-seen order: `BOOK_SAVE/0@100-355`
    /// (`@100` for a single offset).
    var topics: String

    init(_ poison: [(topic: String, partition: Int32, offset: Int64, reason: String)]) {
        var counts: [String: Int] = [:]
        var reasonOrder: [String] = []
        var ranges: [String: (low: Int64, high: Int64)] = [:]
        var placeOrder: [String] = []
        for item in poison {
            if counts[item.reason] == nil { reasonOrder.append(item.reason) }
            counts[item.reason, default: 0] += 1
            let place = "\(item.topic)/\(item.partition)"
            if let range = ranges[place] {
                ranges[place] = (min(range.low, item.offset), max(range.high, item.offset))
            } else {
                placeOrder.append(place)
                ranges[place] = (item.offset, item.offset)
            }
        }
        // Stable: equal counts keep first-seen order.
        reasons = reasonOrder.enumerated()
            .sorted { (counts[$0.element]!, -$0.offset) > (counts[$1.element]!, -$1.offset) }
            .map { "\($0.element)=\(counts[$0.element]!)" }.joined(separator: ",")
        topics = placeOrder.map { place in
            let range = ranges[place]!
            return range.low == range.high ? "\(place)@\(range.low)" : "\(place)@\(range.low)-\(range.high)"
        }.joined(separator: ",")
    }
}
