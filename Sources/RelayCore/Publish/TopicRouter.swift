/// Why a row went to the dead-letter topic instead of its own. The raw value is stored in
/// `outbox.last_error`'s prefix and the `outbox-dlq-reason` header.
public enum DeadLetterReason: String, Sendable, CaseIterable {
    case invalidTopic = "invalid_topic"
    case topicNotAllowed = "topic_not_allowed"
    case malformedRow = "malformed_row"
    case messageTooLarge = "message_too_large"
    case brokerRejected = "broker_rejected"
    case maxAttemptsExceeded = "max_attempts_exceeded"
}

/// Maps an outbox row's topic to the Kafka topic to publish to, or to a dead-letter
/// reason. Pure: validated once at start, applied per row.
public struct TopicRouter: Sendable, Equatable {
    /// Outbox topic → Kafka topic. Rows whose topic is not a key keep their own topic.
    public var routes: [String: String]
    /// When non-empty, only these (post-route) topics may be published.
    public var allowList: Set<String>
    public var deadLetterTopic: String

    public enum Decision: Sendable, Equatable {
        case publish(String)
        case deadLetter(DeadLetterReason, String)
    }

    public init(routes: [String: String] = [:], allowList: Set<String> = [], deadLetterTopic: String = "outbox.dlq") throws(TopicError) {
        for (from, to) in routes {
            if let problem = TopicRouter.problem(with: to) { throw TopicError(setting: "route \(from)=\(to)", problem: problem) }
        }
        for topic in allowList {
            if let problem = TopicRouter.problem(with: topic) { throw TopicError(setting: "allowed topic \(topic)", problem: problem) }
        }
        if let problem = TopicRouter.problem(with: deadLetterTopic) { throw TopicError(setting: "dead-letter topic", problem: problem) }
        self.routes = routes; self.allowList = allowList; self.deadLetterTopic = deadLetterTopic
    }

    public func route(_ topic: String) -> Decision {
        let target = routes[topic] ?? topic
        if let problem = TopicRouter.problem(with: target) {
            return .deadLetter(.invalidTopic, "topic \(TopicRouter.printable(target)) \(problem)")
        }
        if target == deadLetterTopic {
            return .deadLetter(.invalidTopic, "rows may not publish to the dead-letter topic \(deadLetterTopic)")
        }
        if !allowList.isEmpty && !allowList.contains(target) {
            return .deadLetter(.topicNotAllowed, "topic \(target) is not in the allow-list")
        }
        return .publish(target)
    }

    /// Kafka's topic rules: 1 to 249 of `[a-zA-Z0-9._-]`, and not "." or "..".
    public static func problem(with topic: String) -> String? {
        if topic.isEmpty { return "is empty" }
        if topic.utf8.count > 249 { return "is longer than 249 characters" }
        if topic == "." || topic == ".." { return "may not be \".\" or \"..\"" }
        for byte in topic.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                return "contains characters outside [a-zA-Z0-9._-]"
            }
        }
        return nil
    }

    /// A bounded, quoted rendering for logs and errors: bad topics can be long or hostile.
    public static func printable(_ text: String, limit: Int = 80) -> String {
        let clipped = text.unicodeScalars.prefix(limit).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f ? String($0) : "?" }.joined()
        return "\"" + clipped + (text.unicodeScalars.count > limit ? "…" : "") + "\""
    }
}

public struct TopicError: Error, Sendable, Equatable, CustomStringConvertible {
    public var setting: String
    public var problem: String
    public var description: String { "\(setting): the topic \(problem); Kafka topics are 1 to 249 of [a-zA-Z0-9._-]" }
}
