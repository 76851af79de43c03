import RelayCore
import Testing

/// Issue 31 item 4: the relay's notification to itself, which finds a LISTEN that does not
/// work (behind a transaction pooler).
@Suite("Listen probe")
struct ListenProbeTests {
    @Test("a probe that arrives makes it working; none due again until the interval passed")
    func arrives() throws {
        var probe = ListenProbe()
        let payload = try #require(probe.due(now: .zero))
        probe.sent(at: .zero)
        #expect(probe.due(now: .seconds(1)) == nil, "one on its way")
        let arrived = probe.received(payload: payload)
        #expect(arrived)
        #expect(probe.verdict == .working)
        probe.check(now: .seconds(10))
        #expect(probe.verdict == .working)
        #expect(probe.due(now: .seconds(59)) == nil)
        #expect(probe.due(now: ListenProbe.interval) != nil)
    }

    @Test("a probe that does not arrive within the timeout makes it deaf; a later one that arrives, working again")
    func deafThenWorking() throws {
        var probe = ListenProbe()
        _ = try #require(probe.due(now: .zero))
        probe.sent(at: .zero)
        probe.check(now: ListenProbe.timeout - .milliseconds(1))
        #expect(probe.verdict == .unknown)
        probe.check(now: ListenProbe.timeout)
        #expect(probe.verdict == .deaf)
        let second = try #require(probe.due(now: ListenProbe.interval))
        probe.sent(at: ListenProbe.interval)
        let arrived = probe.received(payload: second)
        #expect(arrived)
        #expect(probe.verdict == .working)
    }

    @Test("writers' rings are not probes and change nothing")
    func rings() {
        var probe = ListenProbe()
        probe.sent(at: .zero)
        let isProbe = probe.received(payload: "")
        #expect(!isProbe)
        #expect(probe.verdict == .unknown)
    }

    @Test("a stale probe's late arrival does not hide that the current one is lost")
    func staleProbe() throws {
        var probe = ListenProbe()
        let first = try #require(probe.due(now: .zero))
        probe.sent(at: .zero)
        let arrived = probe.received(payload: first)
        #expect(arrived)
        probe.sent(at: ListenProbe.interval)
        let late = probe.received(payload: first)
        #expect(late, "still a probe, not a ring")
        probe.check(now: ListenProbe.interval + ListenProbe.timeout)
        #expect(probe.verdict == .deaf)
    }
}
