import RelayCore
import Testing

@Suite("Delivery fault classification")
struct DeliveryFaultTests {
    /// (librdkafka error name, where it surfaced, what it means). The operator-error rows
    /// are issue 13's item 7: they used to dead-letter every row of the topic.
    static let table: [(String, DeliveryFault.Stage, DeliveryFault)] = [
        ("_PURGE_QUEUE", .report, .purged),
        ("_PURGE_INFLIGHT", .report, .purged),
        ("_MSG_SIZE_TOO_LARGE", .produce, .row(.messageTooLarge)),
        ("_MSG_SIZE_TOO_LARGE", .report, .row(.messageTooLarge)),
        ("MSG_SIZE_TOO_LARGE", .produce, .row(.messageTooLarge)),
        // From the broker, a size error fails the whole batch: innocent rows shared it.
        ("MSG_SIZE_TOO_LARGE", .report, .operatorError(.brokerSizeLimit("MSG_SIZE_TOO_LARGE"))),
        ("RECORD_LIST_TOO_LARGE", .report, .operatorError(.brokerSizeLimit("RECORD_LIST_TOO_LARGE"))),
        ("INVALID_TOPIC_EXCEPTION", .report, .row(.invalidTopic)),
        ("TOPIC_AUTHORIZATION_FAILED", .report, .operatorError(.authorization("TOPIC_AUTHORIZATION_FAILED"))),
        ("CLUSTER_AUTHORIZATION_FAILED", .report, .operatorError(.authorization("CLUSTER_AUTHORIZATION_FAILED"))),
        ("UNKNOWN_TOPIC_OR_PART", .report, .operatorError(.unknownTopic("UNKNOWN_TOPIC_OR_PART"))),
        ("_UNKNOWN_TOPIC", .produce, .operatorError(.unknownTopic("_UNKNOWN_TOPIC"))),
        ("_UNKNOWN_TOPIC", .report, .operatorError(.unknownTopic("_UNKNOWN_TOPIC"))),
        ("POLICY_VIOLATION", .report, .operatorError(.brokerPolicy("POLICY_VIOLATION"))),
        ("INVALID_RECORD", .report, .operatorError(.brokerPolicy("INVALID_RECORD"))),
        ("_MSG_TIMED_OUT", .report, .session),
        ("_FATAL", .report, .session),
        ("_TRANSPORT", .report, .session),
        ("SOMETHING_NEW", .report, .session),
    ]

    @Test("each error means what the table says", arguments: 0..<table.count)
    func classify(_ index: Int) {
        let (name, stage, expected) = Self.table[index]
        #expect(DeliveryFault.classify(errorName: name, stage: stage) == expected, "\(name) at \(stage)")
    }

    @Test("no operator error is ever the row's fault")
    func operatorErrorsNeverDeadLetter() {
        for name in ["TOPIC_AUTHORIZATION_FAILED", "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "POLICY_VIOLATION"] {
            for stage in [DeliveryFault.Stage.produce, .report] {
                if case .row = DeliveryFault.classify(errorName: name, stage: stage) { Issue.record("\(name) at \(stage) dead-letters the row") }
            }
        }
    }

    @Test("every operator problem's fix names the topic and says publishing resumes")
    func fixes() {
        for problem in [OperatorProblem.authorization("X"), .unknownTopic("X"), .brokerPolicy("X"), .brokerSizeLimit("X")] {
            let fix = problem.fix(topic: "BOOK_SAVE")
            #expect(fix.contains("BOOK_SAVE") && fix.contains("resumes"), "\(problem): \(fix)")
        }
    }
}
