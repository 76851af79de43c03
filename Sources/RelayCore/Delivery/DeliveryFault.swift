/// What a failed produce call or delivery report means for the line. Pure: the relay's
/// I/O shell passes librdkafka's error name (`rd_kafka_err2name`) and where it happened.
///
/// The rule (docs/architecture.md, invariant 6): only a row's own fault dead-letters it. An
/// operator's mistake (a missing ACL or topic, a broker policy or size limit) pauses the
/// line loudly and is retried with backoff until it is fixed; it never kills rows.
public enum DeliveryFault: Sendable, Equatable {
    /// Purged by our own session restart; the rows come again from the slot.
    case purged
    /// This row can never be published as it is: dead-letter it.
    case row(DeadLetterReason)
    /// An operator must fix something (ACL, topic, broker policy): pause and retry.
    case operatorError(OperatorProblem)
    /// Anything else: restart the session from the slot (nothing is lost).
    case session

    /// Where the error surfaced.
    public enum Stage: Sendable, Equatable {
        /// `rd_kafka_producev` refused the message before it left the process: the
        /// message itself is at fault, nothing else shared its fate.
        case produce
        /// A delivery report: the broker answered for a whole batch, so an error here can
        /// fail rows that merely shared the batch.
        case report
    }

    public static func classify(errorName name: String, stage: Stage) -> DeliveryFault {
        switch name {
        case "_PURGE_QUEUE", "_PURGE_INFLIGHT":
            return .purged
        case "_MSG_SIZE_TOO_LARGE":
            return .row(.messageTooLarge)  // librdkafka's own per-message check
        case "MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE":
            // At produce time librdkafka measured this one message against
            // message.max.bytes. From the broker it fails the whole batch: the broker's
            // limit is below the relay's, which is configuration, not the rows' fault.
            return stage == .produce ? .row(.messageTooLarge) : .operatorError(.brokerSizeLimit(name))
        case "INVALID_TOPIC_EXCEPTION", "_INVALID_ARG":
            return .row(.invalidTopic)
        case "TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "_NOT_IMPLEMENTED",
             "SASL_AUTHENTICATION_FAILED", "_AUTHENTICATION":
            return .operatorError(.authorization(name))
        case "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION":
            return .operatorError(.unknownTopic(name))
        case "POLICY_VIOLATION", "INVALID_RECORD", "INVALID_TIMESTAMP", "INVALID_REQUIRED_ACKS",
             "UNSUPPORTED_FOR_MESSAGE_FORMAT", "UNSUPPORTED_COMPRESSION_TYPE":
            return .operatorError(.brokerPolicy(name))
        default:
            return .session  // fatal, timed out, transport, anything unexpected
        }
    }
}

/// A problem an operator has to fix before publishing can go on. Carries librdkafka's
/// error name; `fix(topic:)` says what to do.
public enum OperatorProblem: Sendable, Equatable, CustomStringConvertible {
    case authorization(String)
    case unknownTopic(String)
    case brokerPolicy(String)
    case brokerSizeLimit(String)

    public var errorName: String {
        switch self {
        case .authorization(let n), .unknownTopic(let n), .brokerPolicy(let n), .brokerSizeLimit(let n): return n
        }
    }

    /// A short label for the metric and the health detail.
    public var kind: String {
        switch self {
        case .authorization: return "authorization"
        case .unknownTopic: return "unknown_topic"
        case .brokerPolicy: return "broker_policy"
        case .brokerSizeLimit: return "broker_size_limit"
        }
    }

    public func fix(topic: String) -> String {
        switch self {
        case .authorization:
            return "grant the relay's Kafka principal WRITE (and IDEMPOTENT_WRITE) on topic \(topic), or fix its credentials; publishing resumes by itself"
        case .unknownTopic:
            return "create topic \(topic) (or enable auto.create.topics.enable on the brokers), or route it elsewhere with --route; publishing resumes by itself"
        case .brokerPolicy:
            return "the broker's policy for topic \(topic) rejects the relay's records; change the topic configuration or policy; publishing resumes by itself"
        case .brokerSizeLimit:
            return "the broker's max.message.bytes for topic \(topic) is below the relay's message.max.bytes; raise the topic's limit, or lower the relay's (--kafka-properties message.max.bytes=N) so oversized rows are dead-lettered one by one; publishing resumes by itself"
        }
    }

    public var description: String { "\(kind) (\(errorName))" }
}
