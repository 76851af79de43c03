import RelayCore
import Testing

/// Which topics the sweeper may touch (issue 31, item 1): only those whose consumers write
/// status back; a foreign topic is publish-only.
@Suite("Sweep scope")
struct SweepScopeTests {
    let now = 1_000_000.0
    let day = 86_400.0

    @Test("defaults: the booking and payment topics keep today's safety net; a foreign topic is publish-only")
    func defaults() {
        let modes = SweepScope().modes(registrations: [], now: now)
        #expect(modes == ["BOOK_SAVE": .sweptByAge, "PAYMENT_SAVE": .sweptByAge])
        #expect(SweepScope.mode(of: "ORDER_PLACED", in: modes) == .publishOnly)
        #expect(!SweepScope.mode(of: "ORDER_PLACED", in: modes).isSwept)
    }

    typealias Registration = SweepScope.Registration

    /// Feed: the registrations of topic T → its mode.
    @Test("a topic's mode from its registrations", arguments: [
        ([Registration](), SweepScope.Mode.publishOnly),
        // A group that registered but has read nothing holds the topic back.
        ([Registration(topic: "T", group: "g", seenAt: 1_000_000, readBefore: nil)], .sweptByProgress(readBefore: nil)),
        ([Registration(topic: "T", group: "g", seenAt: 1_000_000, readBefore: 999_990)], .sweptByProgress(readBefore: 999_990)),
        // Two groups: the slower one decides; one that has read nothing wins.
        ([Registration(topic: "T", group: "a", seenAt: 1_000_000, readBefore: 999_990),
          Registration(topic: "T", group: "b", seenAt: 1_000_000, readBefore: 999_900)], .sweptByProgress(readBefore: 999_900)),
        ([Registration(topic: "T", group: "a", seenAt: 1_000_000, readBefore: 999_990),
          Registration(topic: "T", group: "b", seenAt: 1_000_000, readBefore: nil)], .sweptByProgress(readBefore: nil)),
        ([Registration(topic: "T", group: "a", seenAt: 1_000_000, readBefore: nil),
          Registration(topic: "T", group: "b", seenAt: 1_000_000, readBefore: 999_990)], .sweptByProgress(readBefore: nil)),
        // A registration not seen for the expiry (7 days) no longer counts: publish-only again.
        ([Registration(topic: "T", group: "g", seenAt: 1_000_000 - 7 * 86_400, readBefore: 999_000)], .publishOnly),
        ([Registration(topic: "T", group: "g", seenAt: 1_000_000 - 7 * 86_400 + 1, readBefore: 999_000)], .sweptByProgress(readBefore: 999_000)),
    ])
    func registered(registrations: [Registration], mode: SweepScope.Mode) {
        let scope = SweepScope(declaredTopics: [])
        #expect(SweepScope.mode(of: "T", in: scope.modes(registrations: registrations, now: now)) == mode)
    }

    @Test("a declared topic is swept by age until a live group registers; then by progress, and by age again after the group expires")
    func declaredAndRegistered() {
        let scope = SweepScope(declaredTopics: ["BOOK_SAVE"])
        let live = Registration(topic: "BOOK_SAVE", group: "outbox-consumers", seenAt: now - 5, readBefore: now - 3)
        #expect(scope.modes(registrations: [], now: now)["BOOK_SAVE"] == .sweptByAge)
        #expect(scope.modes(registrations: [live], now: now)["BOOK_SAVE"] == .sweptByProgress(readBefore: now - 3))
        #expect(scope.modes(registrations: [live], now: now + 8 * day)["BOOK_SAVE"] == .sweptByAge)
    }

    @Test("with topic-routes, a registration on the Kafka topic counts for the outbox topics routed to it")
    func routed() {
        let scope = SweepScope(declaredTopics: [])
        let registration = Registration(topic: "BOOK_SAVE.v2", group: "g", seenAt: now, readBefore: now - 1)
        let modes = scope.modes(registrations: [registration], now: now, routes: ["BOOK_SAVE": "BOOK_SAVE.v2", "OTHER": "ELSEWHERE"])
        #expect(modes == ["BOOK_SAVE": .sweptByProgress(readBefore: now - 1), "BOOK_SAVE.v2": .sweptByProgress(readBefore: now - 1)])
        let away = Registration(topic: "OTHER", group: "g", seenAt: now, readBefore: now - 1)
        #expect(scope.modes(registrations: [away], now: now, routes: ["OTHER": "ELSEWHERE"]).isEmpty,
                "rows of OTHER go to ELSEWHERE: a consumer of the Kafka topic OTHER never sees them")
    }

    @Test("due: age-swept always, publish-only never, progress-swept once read past the publication", arguments: [
        (SweepScope.Mode.sweptByAge, 50.0, true),
        (.publishOnly, 50, false),
        (.sweptByProgress(readBefore: nil), 50, false),
        (.sweptByProgress(readBefore: -.infinity), 50, false),
        (.sweptByProgress(readBefore: 49.9), 50, false),
        (.sweptByProgress(readBefore: 50), 50, true),
        (.sweptByProgress(readBefore: 60), 50, true),
    ])
    func due(mode: SweepScope.Mode, publishedBy: Double, due: Bool) {
        #expect(SweepScope.isDue(mode, publishedBy: publishedBy) == due)
    }

    @Test("mode names for status and /metrics")
    func names() {
        #expect([SweepScope.Mode.publishOnly, .sweptByAge, .sweptByProgress(readBefore: nil)].map(\.name)
                == ["publish_only", "swept_by_age", "swept_by_progress"])
    }
}
