@testable import RelayCore
import Testing

@Suite("In-flight window, backoff, sweeper policy")
struct PolicyTests {
    @Test func windowBoundsEventsAndBytes() {
        var w = InFlightWindow(maxEvents: 3, maxBytes: 100)
        let results = [w.tryAcquire(bytes: 40), w.tryAcquire(bytes: 40), w.tryAcquire(bytes: 40), w.tryAcquire(bytes: 20), w.tryAcquire(bytes: 0)]
        #expect(results == [true, true, false, true, false], "bytes bound, then event bound")
        #expect(w.isFull)
        w.release(bytes: 40)
        let afterRelease = w.tryAcquire(bytes: 0)
        #expect(afterRelease)
    }

    @Test("an event larger than the byte bound is admitted only into an empty window")
    func oversize() {
        var w = InFlightWindow(maxEvents: 10, maxBytes: 100)
        let busy = [w.tryAcquire(bytes: 1), w.tryAcquire(bytes: 1_000)]
        #expect(busy == [true, false])
        w.release(bytes: 1)
        let empty = [w.tryAcquire(bytes: 1_000), w.tryAcquire(bytes: 1)]
        #expect(empty == [true, false])
    }

    @Test func backoffGrowsCapsAndJitters() {
        let b = Backoff(initial: .milliseconds(100), maximum: .seconds(2), multiplier: 2)
        #expect(b.ceiling(attempt: 0) == .milliseconds(100))
        #expect(b.ceiling(attempt: 3) == .milliseconds(800))
        #expect(b.ceiling(attempt: 10) == .seconds(2))
        #expect(b.ceiling(attempt: 10_000) == .seconds(2))
        #expect(b.delay(attempt: 3, random: 0) == .milliseconds(400))
        #expect(b.delay(attempt: 3, random: 1) == .milliseconds(800))
        #expect(b.delay(attempt: 3, random: 7) == .milliseconds(800), "random is clamped")
        for attempt in 0..<20 {
            let d = b.delay(attempt: attempt)
            #expect(d >= b.ceiling(attempt: attempt) / 2 && d <= b.ceiling(attempt: attempt))
        }
    }

    @Test func sweeperPolicy() throws {
        let p = SweeperPolicy(maxAttempts: 3, backoffBase: .seconds(10), backoffCap: .seconds(60))
        #expect(p.decide(attempts: 0) == .resend && p.decide(attempts: 2) == .resend && p.decide(attempts: 3) == .deadLetter)
        #expect(p.backoffSeconds(afterAttempts: 0) == 0)
        #expect(p.backoffSeconds(afterAttempts: 1) == 10)
        #expect(p.backoffSeconds(afterAttempts: 2) == 20)
        #expect(p.backoffSeconds(afterAttempts: 3) == 40)
        #expect(p.backoffSeconds(afterAttempts: 4) == 60)
        #expect(p.backoffSeconds(afterAttempts: 500) == 60)
        try SweeperPolicy().validate()
        #expect(SweeperPolicy().interval == .seconds(20) && SweeperPolicy().minimumAge == .seconds(10), "the original service's defaults")
        #expect(throws: PolicyError.self) { try SweeperPolicy(maxAttempts: 0).validate() }
        #expect(throws: PolicyError.self) { try SweeperPolicy(backoffBase: .seconds(10), backoffCap: .seconds(1)).validate() }
        #expect(throws: PolicyError.self) { try SweeperPolicy(batchSize: 0).validate() }
    }
}
