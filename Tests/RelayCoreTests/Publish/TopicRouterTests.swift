@testable import RelayCore
import Testing

@Suite("Topic routing and validation")
struct TopicRouterTests {
    @Test(arguments: ["BOOK_SAVE", "a.b-c_d", String(repeating: "x", count: 249), "0"])
    func validTopics(topic: String) throws {
        #expect(TopicRouter.problem(with: topic) == nil)
        #expect(try TopicRouter().route(topic) == .publish(topic))
    }

    @Test(arguments: ["", ".", "..", "bad topic", "x'; DROP TABLE outbox;--", "ünicode", String(repeating: "x", count: 250), "a/b", "tab\t"])
    func invalidTopicsAreDeadLettered(topic: String) throws {
        guard case .deadLetter(let reason, let detail) = try TopicRouter().route(topic) else { Issue.record("published \(topic)"); return }
        #expect(reason == .invalidTopic)
        #expect(detail.count < 200, "bounded detail for hostile input")
    }

    @Test func routesAndAllowList() throws {
        let router = try TopicRouter(routes: ["BOOK_SAVE": "bookings.v1"], allowList: ["bookings.v1", "PAYMENT_SAVE"], deadLetterTopic: "dlq")
        #expect(router.route("BOOK_SAVE") == .publish("bookings.v1"))
        #expect(router.route("PAYMENT_SAVE") == .publish("PAYMENT_SAVE"))
        guard case .deadLetter(.topicNotAllowed, _) = router.route("OTHER") else { Issue.record("allowed OTHER"); return }
        guard case .deadLetter(.invalidTopic, _) = router.route("dlq") else { Issue.record("rows may not write the DLQ"); return }
    }

    @Test func invalidConfigurationIsRejected() {
        #expect(throws: TopicError.self) { try TopicRouter(routes: ["A": "bad topic"]) }
        #expect(throws: TopicError.self) { try TopicRouter(allowList: [""]) }
        #expect(throws: TopicError.self) { try TopicRouter(deadLetterTopic: "..") }
    }

    @Test func printableIsBoundedAndSafe() {
        #expect(TopicRouter.printable("ab\ncd") == "\"ab?cd\"")
        #expect(TopicRouter.printable(String(repeating: "z", count: 500), limit: 10) == "\"zzzzzzzzzz…\"")
    }
}
