/// Which topics the sweeper may re-send, and on what evidence. Pure.
///
/// The sweeper is a safety net for consumers that write status back: a row left INIT on
/// such a topic means the message was lost or skipped. On a topic whose consumers never
/// write back (another team's service reading `ORDER_PLACED`), every row stays INIT
/// forever, so re-sending there only floods Kafka and the dead-letter topic (issue 31).
/// A topic is therefore swept only when someone says its consumers write back:
///
/// - **Registered**: a write-back consumer group (our `consume` command) registers its
///   topics at start in `outbox_writeback_consumer` and records how far it has read in
///   `outbox_consumer_progress`. Such a topic is swept by *progress*: a row is due only
///   once every live registered group has read past the row's message, so a group that is
///   down or behind costs no re-send and no attempt.
/// - **Declared** (`sweeper-writeback-topics`): the operator names topics whose consumers
///   write back but record no progress (the original Spring listener). With no live
///   registration they are swept by *age*, today's rule.
/// - Anything else is **publish-only**: published once by the stream, never re-sent, and
///   deleted by retention once the stream has confirmed past it.
///
/// Registration rather than learning from statuses: a learned topic would be swept by age
/// from its first COMPLETE row on, with no way to tell a consumer that is down from one
/// that skipped a message, and a topic nobody has confirmed yet would be publish-only and
/// lose its rows to retention. A registration that is not refreshed for `consumerExpiry`
/// (the group was decommissioned) stops counting, so its rows cannot stay INIT forever.
public struct SweepScope: Sendable, Equatable {
    /// How the sweeper treats one topic.
    public enum Mode: Sendable, Equatable {
        /// Never re-sent; rows leave by retention.
        case publishOnly
        /// Declared but nobody records progress: due by age and backoff alone.
        case sweptByAge
        /// Due once every live registered group has read past the row's message. `readBefore`
        /// is the slowest group's "every message produced before this time was read"
        /// (seconds since 1970); nil while some group has read nothing yet.
        case sweptByProgress(readBefore: Double?)

        /// The name `status` and `/metrics` use.
        public var name: String {
            switch self {
            case .publishOnly: "publish_only"
            case .sweptByAge: "swept_by_age"
            case .sweptByProgress: "swept_by_progress"
            }
        }

        public var isSwept: Bool { self != .publishOnly }
    }

    /// A registered write-back group on one topic, as the tables say.
    public struct Registration: Sendable, Equatable {
        public var topic: String
        public var group: String
        /// When the group last registered or recorded progress (seconds since 1970).
        public var seenAt: Double
        /// The minimum over the topic's partitions of the group's read-before time; nil when
        /// it has recorded none. A partition it was assigned but has not read yet counts as
        /// -infinity, so a new member holds the topic back until it has read.
        public var readBefore: Double?

        public init(topic: String, group: String, seenAt: Double, readBefore: Double?) {
            self.topic = topic; self.group = group; self.seenAt = seenAt; self.readBefore = readBefore
        }
    }

    /// Topics the operator declares write-back (`sweeper-writeback-topics`).
    public var declaredTopics: Set<String>
    /// A registration not seen for this long stops counting (`sweeper-consumer-expiry`).
    public var consumerExpiry: Duration

    public static let defaultDeclaredTopics: Set<String> = ["BOOK_SAVE", "PAYMENT_SAVE"]

    public init(declaredTopics: Set<String> = SweepScope.defaultDeclaredTopics, consumerExpiry: Duration = .seconds(7 * 86_400)) {
        self.declaredTopics = declaredTopics
        self.consumerExpiry = consumerExpiry
    }

    /// Every outbox topic that is swept, by mode; a topic not in the result is publish-only.
    /// Consumers register Kafka topics; `routes` (`topic-routes`, outbox topic → Kafka
    /// topic) says which outbox topics feed each one.
    public func modes(registrations: [Registration], now: Double, routes: [String: String] = [:]) -> [String: Mode] {
        var result: [String: Mode] = [:]
        for topic in declaredTopics { result[topic] = .sweptByAge }
        var slowest: [String: Double?] = [:]
        for registration in registrations where now - registration.seenAt < consumerExpiry.inSeconds {
            let read = registration.readBefore
            let fed = routes.filter { $0.value == registration.topic }.map(\.key) + (routes[registration.topic] == nil ? [registration.topic] : [])
            for topic in fed {
                // nil (a group that has read nothing) wins: the row is not due for it. (updateValue:
                // assigning a nil Double? through the subscript would remove the key.)
                let merged = slowest[topic].map { previous in previous.flatMap { p in read.map { min(p, $0) } } } ?? read
                slowest.updateValue(merged, forKey: topic)
            }
        }
        for (topic, read) in slowest { result[topic] = .sweptByProgress(readBefore: read) }
        return result
    }

    /// `topic`'s mode in `modes` (publish-only when absent).
    public static func mode(of topic: String, in modes: [String: Mode]) -> Mode { modes[topic] ?? .publishOnly }

    /// Whether a row of a topic in `mode`, whose message the stream had published by
    /// `publishedBy` (seconds since 1970), is due now. A progress-swept row is due only
    /// when its consumers read past that time and it is still INIT: they passed it without
    /// confirming, or it never reached Kafka.
    public static func isDue(_ mode: Mode, publishedBy: Double) -> Bool {
        switch mode {
        case .publishOnly: false
        case .sweptByAge: true
        case .sweptByProgress(let readBefore): (readBefore ?? -.infinity) >= publishedBy
        }
    }
}
