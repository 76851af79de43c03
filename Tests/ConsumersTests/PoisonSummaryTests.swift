@testable import Consumers
import Testing

/// One warning per batch of dead letters, not one per message (the log flooded at 2,500-3,000
/// lines a second when a fresh group replayed old messages whose rows were gone).
@Suite("Poison summary: one log line per batch")
struct PoisonSummaryTests {
    @Test("reasons counted, most frequent first; offset ranges per topic and partition in first-seen order")
    func summary() {
        var poison: [(topic: String, partition: Int32, offset: Int64, reason: String)] = []
        for offset in Int64(100)...355 { poison.append(("BOOK_SAVE", 0, offset, "missing_outbox_row")) }
        poison.append(("PAYMENT_SAVE", 2, 7, "unknown_type"))
        poison.append(("BOOK_SAVE", 1, 40, "unparseable_payload"))
        poison.append(("PAYMENT_SAVE", 2, 9, "unknown_type"))
        let summary = PoisonSummary(poison)
        #expect(summary.reasons == "missing_outbox_row=256,unknown_type=2,unparseable_payload=1")
        #expect(summary.topics == "BOOK_SAVE/0@100-355,PAYMENT_SAVE/2@7-9,BOOK_SAVE/1@40")
    }

    @Test("equal counts keep first-seen order; a single offset is written alone")
    func ties() {
        let summary = PoisonSummary([("T", 0, 5, "b"), ("T", 0, 3, "a")])
        #expect(summary.reasons == "b=1,a=1")
        #expect(summary.topics == "T/0@3-5")
        #expect(PoisonSummary([("T", 3, 8, "a")]).topics == "T/3@8")
    }
}
