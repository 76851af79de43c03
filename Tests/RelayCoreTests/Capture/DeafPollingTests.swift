import RelayCore
import Testing

/// Issue 31 item 4: behind a transaction pooler with default settings (LISTEN deaf), notify
/// capture's reads follow recent traffic instead of waiting for the fallback timer.
@Suite("Deaf polling")
struct DeafPollingTests {
    static let fallback = Duration.seconds(1)

    @Test("while LISTEN works the limit is the fallback interval, whatever the traffic")
    func working() {
        var polling = DeafPolling()
        polling.read(foundRows: true, now: .zero)
        #expect(polling.sleepLimit(deaf: false, fallback: Self.fallback, now: .milliseconds(10)) == Self.fallback)
    }

    @Test("deaf, with rows within quietAfter: every sleep is the fast interval (a 5 rows/s trickle never waits longer)")
    func trickle() {
        var polling = DeafPolling()
        var now = Duration.zero
        for _ in 0..<50 {
            polling.read(foundRows: true, now: now)
            for _ in 0..<4 {  // rows 200 ms apart: four empty reads between two that find one
                #expect(polling.sleepLimit(deaf: true, fallback: Self.fallback, now: now) == DeafPolling.fastInterval)
                now += DeafPolling.fastInterval
                polling.read(foundRows: false, now: now)
            }
            now += .milliseconds(40)
        }
    }

    @Test("deaf and quiet: each empty read doubles the sleep up to the fallback; rows make it fast at once", arguments: [
        // (the fallback, the sleeps expected once quiet)
        (Duration.seconds(1), [40, 80, 160, 320, 640, 1_000, 1_000].map { Duration.milliseconds($0) }),
        (Duration.milliseconds(100), [40, 80, 100, 100].map { Duration.milliseconds($0) }),
        (Duration.milliseconds(10), [10, 10].map { Duration.milliseconds($0) }),
    ])
    func backsOff(fallback: Duration, expected: [Duration]) {
        var polling = DeafPolling()
        polling.read(foundRows: true, now: .zero)
        var now = DeafPolling.quietAfter
        var sleeps: [Duration] = []
        for _ in expected {
            let sleep = polling.sleepLimit(deaf: true, fallback: fallback, now: now)
            sleeps.append(sleep)
            now += sleep
            polling.read(foundRows: false, now: now)
        }
        #expect(sleeps == expected)
        polling.read(foundRows: true, now: now)
        #expect(polling.sleepLimit(deaf: true, fallback: fallback, now: now) == min(DeafPolling.fastInterval, fallback))
        // Quiet again: the back-off starts over from the fast interval.
        #expect(polling.sleepLimit(deaf: true, fallback: fallback, now: now + DeafPolling.quietAfter) == min(DeafPolling.fastInterval, fallback))
    }

    @Test("deaf before any row: an idle relay backs off from the fast interval to the fallback")
    func idleFromStart() {
        var polling = DeafPolling()
        #expect(polling.sleepLimit(deaf: true, fallback: Self.fallback, now: .zero) == DeafPolling.fastInterval)
        #expect(polling.sleepLimit(deaf: true, fallback: Self.fallback, now: .milliseconds(40)) == .milliseconds(80))
    }
}
