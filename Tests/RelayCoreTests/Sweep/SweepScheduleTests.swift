import PGOutput
import RelayCore
import Testing

/// The sweeper's schedule: a re-send only ever follows the stream (issue 13, item 1), and
/// on a progress-swept topic only the consumers' reading past the row (issue 31).
@Suite("Sweep schedule")
struct SweepScheduleTests {
    let t0 = ContinuousClock.now
    func schedule() -> SweepSchedule { SweepSchedule(interval: .seconds(20), grace: .seconds(10), snapshotExpiry: .seconds(60)) }
    let byAge: [String: SweepScope.Mode] = ["T": .sweptByAge]

    @Test("a round: snapshot, wait for the stream to confirm past the watermark, wait the grace, re-send")
    func round() {
        var s = schedule()
        #expect(s.next(now: t0, wallNow: 0, streaming: true, confirmed: LSN(50)) == .takeSnapshot)
        s.tookSnapshot(candidates: [3: "T", 7: "T"], watermark: LSN(100), at: t0)
        // The stream has not published the candidates yet: never a re-send, however long.
        #expect(s.next(now: t0 + .seconds(1), wallNow: 1, streaming: true, confirmed: LSN(99)) == .waitForStream(LSN(100)))
        #expect(s.next(now: t0 + .seconds(30), wallNow: 30, streaming: true, confirmed: LSN(99)) == .waitForStream(LSN(100)))
        // Confirmed past it at t0+31 s: consumers get the grace from then on.
        #expect(s.next(now: t0 + .seconds(31), wallNow: 31, streaming: true, confirmed: LSN(100)) == .idle)
        #expect(s.publishedBy == [3: 31, 7: 31])
        #expect(s.next(now: t0 + .seconds(40), wallNow: 40, streaming: true, confirmed: LSN(120)) == .idle)
        #expect(s.next(now: t0 + .seconds(41), wallNow: 41, streaming: true, confirmed: LSN(120)) == .resendDue)
        #expect(s.finishRound(modes: byAge) == [3, 7])
        #expect(s.snapshot == nil && s.publishedBy.isEmpty, "a re-sent row's published-by time is forgotten")
        // The next snapshot waits for the interval after the last one (t0 + 20 s): due.
        #expect(s.next(now: t0 + .seconds(42), wallNow: 42, streaming: true, confirmed: LSN(120)) == .takeSnapshot)
    }

    @Test("the outage case: the stream catches up within a second, so the candidates' consumers get the full grace")
    func outage() {
        var s = schedule()
        _ = s.next(now: t0, wallNow: 0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(candidates: Dictionary(uniqueKeysWithValues: (1...3000).map { (Int64($0), "T") }), watermark: LSN(5_000), at: t0)
        #expect(s.next(now: t0 + .milliseconds(800), wallNow: 0.8, streaming: true, confirmed: LSN(5_001)) == .idle)
        #expect(s.next(now: t0 + .seconds(10), wallNow: 10, streaming: true, confirmed: LSN(5_001)) == .idle)
        #expect(s.next(now: t0 + .milliseconds(10_800), wallNow: 10.8, streaming: true, confirmed: LSN(5_001)) == .resendDue)
        #expect(s.finishRound(modes: byAge) == (1...3000).map { Int64($0) })
    }

    @Test("a stuck stream (broker frozen) drops the snapshot after its expiry; nothing is re-sent or deleted")
    func expiry() {
        var s = schedule()
        _ = s.next(now: t0, wallNow: 0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(candidates: [1: "T"], expired: [9], watermark: LSN(100), at: t0)
        #expect(s.next(now: t0 + .seconds(59), wallNow: 59, streaming: true, confirmed: LSN(10)) == .waitForStream(LSN(100)))
        #expect(s.next(now: t0 + .seconds(60), wallNow: 60, streaming: true, confirmed: LSN(10)) == .takeSnapshot)
        #expect(s.snapshot == nil && s.publishedBy.isEmpty)
    }

    @Test("a standby or a reconnecting relay never sweeps, and forgets its round")
    func notStreaming() {
        var s = schedule()
        _ = s.next(now: t0, wallNow: 0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(candidates: [1: "T"], watermark: LSN(5), at: t0)
        #expect(s.next(now: t0 + .seconds(1), wallNow: 1, streaming: true, confirmed: LSN(10)) == .idle)
        #expect(s.next(now: t0 + .seconds(20), wallNow: 20, streaming: false, confirmed: LSN(10)) == .idle)
        #expect(s.snapshot == nil && s.publishedBy.isEmpty)
        // Streaming again: a fresh round, never the old candidates straight away.
        #expect(s.next(now: t0 + .seconds(21), wallNow: 21, streaming: true, confirmed: LSN(10)) == .takeSnapshot)
    }

    @Test("an empty snapshot waits for the next interval")
    func empty() {
        var s = schedule()
        _ = s.next(now: t0, wallNow: 0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(candidates: [:], watermark: LSN(100), at: t0)
        #expect(s.next(now: t0 + .seconds(1), wallNow: 1, streaming: true, confirmed: LSN(10)) == .idle)
        #expect(s.next(now: t0 + .seconds(19), wallNow: 19, streaming: true, confirmed: LSN(10)) == .idle)
        #expect(s.next(now: t0 + .seconds(20), wallNow: 20, streaming: true, confirmed: LSN(10)) == .takeSnapshot)
    }

    @Test("rows past retention are deleted only once the stream confirmed past the watermark, with no grace; a full list asks for the next snapshot at once")
    func retention() {
        var s = schedule()
        _ = s.next(now: t0, wallNow: 0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(candidates: [:], expired: [4, 5], watermark: LSN(100), at: t0, more: true)
        #expect(s.next(now: t0 + .seconds(1), wallNow: 1, streaming: true, confirmed: LSN(99)) == .waitForStream(LSN(100)))
        #expect(s.next(now: t0 + .seconds(2), wallNow: 2, streaming: true, confirmed: LSN(100)) == .deleteExpired([4, 5]))
        #expect(s.next(now: t0 + .seconds(2), wallNow: 2, streaming: true, confirmed: LSN(100)) == .idle)
        #expect(s.next(now: t0 + .seconds(3), wallNow: 3, streaming: true, confirmed: LSN(100)) == .takeSnapshot, "more: no interval wait")
    }

    @Test("deletes and re-sends in one round: the delete first, the re-send after the grace")
    func retentionAndResend() {
        var s = schedule()
        _ = s.next(now: t0, wallNow: 0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(candidates: [1: "T"], expired: [2], watermark: LSN(100), at: t0)
        #expect(s.next(now: t0 + .seconds(1), wallNow: 1, streaming: true, confirmed: LSN(100)) == .deleteExpired([2]))
        #expect(s.next(now: t0 + .seconds(2), wallNow: 2, streaming: true, confirmed: LSN(100)) == .idle)
        #expect(s.next(now: t0 + .seconds(11), wallNow: 11, streaming: true, confirmed: LSN(100)) == .resendDue)
        #expect(s.finishRound(modes: byAge) == [1])
    }

    /// Feed: the mode of topic T at the end of a round → which candidates are due.
    @Test("which candidates a round re-sends, by their topic's mode", arguments: [
        (SweepScope.Mode.sweptByAge, [Int64(1), 2]),
        (.publishOnly, []),
        (.sweptByProgress(readBefore: nil), []),               // the group has read nothing yet
        (.sweptByProgress(readBefore: 30.999), []),            // behind the rows' publication (31)
        (.sweptByProgress(readBefore: 31), [1, 2]),            // read past them: passed without confirming
        (.sweptByProgress(readBefore: 1_000), [1, 2]),
    ])
    func dueByMode(mode: SweepScope.Mode, due: [Int64]) {
        var s = schedule()
        _ = s.next(now: t0, wallNow: 0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(candidates: [1: "T", 2: "T", 3: "OTHER"], watermark: LSN(100), at: t0)
        _ = s.next(now: t0 + .seconds(1), wallNow: 31, streaming: true, confirmed: LSN(100))
        #expect(s.next(now: t0 + .seconds(11), wallNow: 41, streaming: true, confirmed: LSN(100)) == .resendDue)
        #expect(s.finishRound(modes: ["T": mode]) == due, "OTHER is publish-only: never")
    }

    @Test("a candidate keeps the time it was first seen published across rounds, so a consumer that is always behind still reaches it")
    func publishedByIsKept() {
        var s = schedule()
        let progress: (Double) -> [String: SweepScope.Mode] = { ["T": .sweptByProgress(readBefore: $0)] }
        _ = s.next(now: t0, wallNow: 100, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(candidates: [1: "T"], watermark: LSN(100), at: t0)
        _ = s.next(now: t0, wallNow: 100, streaming: true, confirmed: LSN(100))
        _ = s.next(now: t0 + .seconds(10), wallNow: 110, streaming: true, confirmed: LSN(100))
        #expect(s.finishRound(modes: progress(95)) == [], "the consumers are 15 s behind")
        // Next round, 20 s later: still 15 s behind real time, but past the first sighting.
        _ = s.next(now: t0 + .seconds(20), wallNow: 120, streaming: true, confirmed: LSN(100))
        s.tookSnapshot(candidates: [1: "T", 2: "T"], watermark: LSN(200), at: t0 + .seconds(20))
        _ = s.next(now: t0 + .seconds(21), wallNow: 121, streaming: true, confirmed: LSN(200))
        #expect(s.publishedBy == [1: 100, 2: 121])
        #expect(s.next(now: t0 + .seconds(31), wallNow: 131, streaming: true, confirmed: LSN(200)) == .resendDue)
        #expect(s.finishRound(modes: progress(116)) == [1])
        #expect(s.publishedBy == [2: 121], "the re-sent row waits for its consumers to read past the re-send")
    }
}
