import PGOutput
import RelayCore
import Testing

/// The sweeper's schedule: a re-send only ever follows the stream (issue 13, item 1).
@Suite("Sweep schedule")
struct SweepScheduleTests {
    let t0 = ContinuousClock.now
    func schedule() -> SweepSchedule { SweepSchedule(interval: .seconds(20), grace: .seconds(10), snapshotExpiry: .seconds(60)) }

    @Test("a round: snapshot, wait for the stream to confirm past the watermark, wait the grace, re-send")
    func round() {
        var s = schedule()
        #expect(s.next(now: t0, streaming: true, confirmed: LSN(50)) == .takeSnapshot)
        s.tookSnapshot(ids: [3, 7], watermark: LSN(100), at: t0)
        // The stream has not published the candidates yet: never a re-send, however long.
        #expect(s.next(now: t0 + .seconds(1), streaming: true, confirmed: LSN(99)) == .waitForStream(LSN(100)))
        #expect(s.next(now: t0 + .seconds(30), streaming: true, confirmed: LSN(99)) == .waitForStream(LSN(100)))
        // Confirmed past it at t0+31 s: consumers get the grace from then on.
        #expect(s.next(now: t0 + .seconds(31), streaming: true, confirmed: LSN(100)) == .idle)
        #expect(s.next(now: t0 + .seconds(40), streaming: true, confirmed: LSN(120)) == .idle)
        #expect(s.next(now: t0 + .seconds(41), streaming: true, confirmed: LSN(120)) == .resend([3, 7]))
        s.finishedRound()
        #expect(s.snapshot == nil)
        // The next snapshot waits for the interval after the last one (t0 + 20 s): due.
        #expect(s.next(now: t0 + .seconds(42), streaming: true, confirmed: LSN(120)) == .takeSnapshot)
    }

    @Test("the outage case: the stream catches up within a second, so the candidates' consumers get the full grace")
    func outage() {
        var s = schedule()
        _ = s.next(now: t0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(ids: Array(1...3000), watermark: LSN(5_000), at: t0)
        #expect(s.next(now: t0 + .milliseconds(800), streaming: true, confirmed: LSN(5_001)) == .idle)
        #expect(s.next(now: t0 + .seconds(10), streaming: true, confirmed: LSN(5_001)) == .idle)
        #expect(s.next(now: t0 + .milliseconds(10_800), streaming: true, confirmed: LSN(5_001)) == .resend(Array(1...3000)))
    }

    @Test("a stuck stream (broker frozen) drops the snapshot after its expiry; nothing is re-sent")
    func expiry() {
        var s = schedule()
        _ = s.next(now: t0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(ids: [1], watermark: LSN(100), at: t0)
        #expect(s.next(now: t0 + .seconds(59), streaming: true, confirmed: LSN(10)) == .waitForStream(LSN(100)))
        #expect(s.next(now: t0 + .seconds(60), streaming: true, confirmed: LSN(10)) == .takeSnapshot)
        #expect(s.snapshot == nil)
    }

    @Test("a standby or a reconnecting relay never sweeps, and forgets its round")
    func notStreaming() {
        var s = schedule()
        _ = s.next(now: t0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(ids: [1], watermark: LSN(5), at: t0)
        #expect(s.next(now: t0 + .seconds(1), streaming: true, confirmed: LSN(10)) == .idle)
        #expect(s.next(now: t0 + .seconds(20), streaming: false, confirmed: LSN(10)) == .idle)
        #expect(s.snapshot == nil)
        // Streaming again: a fresh round, never the old candidates straight away.
        #expect(s.next(now: t0 + .seconds(21), streaming: true, confirmed: LSN(10)) == .takeSnapshot)
    }

    @Test("an empty snapshot waits for the next interval")
    func empty() {
        var s = schedule()
        _ = s.next(now: t0, streaming: true, confirmed: LSN(10))
        s.tookSnapshot(ids: [], watermark: LSN(100), at: t0)
        #expect(s.next(now: t0 + .seconds(1), streaming: true, confirmed: LSN(10)) == .idle)
        #expect(s.next(now: t0 + .seconds(19), streaming: true, confirmed: LSN(10)) == .idle)
        #expect(s.next(now: t0 + .seconds(20), streaming: true, confirmed: LSN(10)) == .takeSnapshot)
    }
}
