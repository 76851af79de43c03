import RelayCore
import Testing

/// The batch plan of `redrive` and `replay`: bounded by the limit, resumable from the last
/// id done, and never counting a row after a failure as done (per-key order on resume).
@Suite("Republish plan")
struct RepublishPlanTests {
    @Test("batches shrink to the limit, then stop; the cursor is the last id done")
    func limitAndCursor() throws {
        var cursor = try RepublishCursor(afterID: 100, limit: 1_200, batchSize: 500)
        #expect(cursor.nextBatchSize == 500)
        cursor.advance(to: 700, rows: 500)
        #expect(cursor.nextBatchSize == 500)
        cursor.advance(to: 1_250, rows: 500)
        #expect(cursor.nextBatchSize == 200)
        cursor.advance(to: 1_400, rows: 200)
        #expect(cursor.nextBatchSize == nil)
        #expect(cursor.afterID == 1_400 && cursor.done == 1_200)

        let unbounded = try RepublishCursor(limit: nil, batchSize: 3)
        #expect(unbounded.nextBatchSize == 3 && unbounded.afterID == 0)
    }

    /// (after-id, limit, batch size) → the flag the refusal names.
    @Test("refused cursors name the flag and the fix", arguments: [
        (Int64(-1), 10, 500, "--after-id"), (0, 0, 500, "--limit"), (0, 10, 0, "--batch-size"), (0, 10, 10_001, "--batch-size"),
    ])
    func refused(afterID: Int64, limit: Int, batchSize: Int, flag: String) {
        do {
            _ = try RepublishCursor(afterID: afterID, limit: limit, batchSize: batchSize)
            Issue.record("accepted a cursor that should be refused (\(flag))")
        } catch {
            #expect(error.description.contains(flag) && error.description.contains("Fix: "), "\(error)")
        }
    }

    /// Outcomes in id order → what is done, what is refused, where to resume.
    @Test("settling a batch", arguments: [
        // Everything sent.
        ([(1, RowSendOutcome.sent), (2, .sent), (3, .sent)], [Int64(1), 2, 3], [String: [Int64]](), Int64(3), 3, String?.none),
        // A row refused for its own reason: reported, the run goes on past it.
        ([(1, .sent), (2, .refused("message_too_large")), (3, .sent)], [1, 3], ["message_too_large": [2]], 3, 3, nil),
        // A failure: rows after it are not done even if they reached Kafka; resume before it.
        ([(1, .sent), (2, .failed("broker down")), (3, .sent)], [1], [:], 1, 1, "broker down"),
        // A failure on the first row: the cursor does not move.
        ([(5, .failed("timed out")), (6, .sent)], [], [:], 0, 0, "timed out"),
        ([], [], [:], 0, 0, nil),
    ] as [([(Int64, RowSendOutcome)], [Int64], [String: [Int64]], Int64, Int, String?)])
    func settle(rows: [(Int64, RowSendOutcome)], published: [Int64], refused: [String: [Int64]], resumeAfter: Int64, settled: Int, failure: String?) {
        let settlement = BatchSettlement.settle(previous: 0, rows: rows.map { (id: $0.0, outcome: $0.1) })
        #expect(settlement.published == published)
        #expect(settlement.refused == refused)
        #expect(settlement.resumeAfter == resumeAfter)
        #expect(settlement.settled == settled)
        #expect(settlement.failure == failure)
    }

    @Test("only a batch holding INIT rows waits for the relay's stream", arguments: [
        (["DEAD"], false), (["COMPLETE", "PUBLISHED", "DEAD"], false), (["COMPLETE", "INIT"], true), ([], false),
    ])
    func streamWait(statuses: [String], waits: Bool) {
        #expect(BatchSettlement.mustWaitForStream(statuses: statuses) == waits)
    }
}

@Suite("Replay run id")
struct ReplayRunIDTests {
    @Test("generated from the UTC start time and a random suffix", arguments: [
        (Int64(0), UInt16(0), "replay-19700101T000000-0000"),
        (1_796_589_296, 0xbeef, "replay-20261206T203456-beef"),
        (951_782_400, 0x1, "replay-20000229T000000-0001"),  // a leap day
    ])
    func generated(seconds: Int64, random: UInt16, expected: String) {
        #expect(ReplayRunID.generate(epochSeconds: seconds, random: random) == expected)
    }

    @Test("a given id is printable, without spaces, at most 100 characters", arguments: [
        ("incident-4711", true), ("", false), ("two words", false), (String(repeating: "x", count: 101), false), ("tab\there", false),
    ])
    func validated(id: String, valid: Bool) {
        #expect((try? ReplayRunID.validate(id)) != nil ? valid : !valid)
    }
}
