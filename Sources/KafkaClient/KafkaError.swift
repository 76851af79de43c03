internal import CRdKafka

/// An error from librdkafka, with its code, name and whether retrying can help.
/// Never contains configuration values, so secrets cannot leak through it.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }
        public static let configuration = Code("configuration")
        public static let queueFull = Code("queue_full")
        public static let delivery = Code("delivery")
        public static let fatal = Code("fatal")
        public static let unreachable = Code("unreachable")
        public static let consumer = Code("consumer")
        public static let closed = Code("closed")
        /// The broker refused the SASL credentials. Retrying cannot help.
        public static let authentication = Code("authentication")
        /// The TLS handshake failed (certificate not trusted, wrong protocol). Retrying cannot help.
        public static let tls = Code("tls")
        public var description: String { raw }
    }

    public var code: Code
    /// librdkafka's `rd_kafka_resp_err_t` value.
    public var rawCode: Int32
    /// librdkafka's name for it, e.g. `MSG_SIZE_TOO_LARGE`.
    public var name: String
    public var message: String
    public var isRetriable: Bool
    public var isFatal: Bool
    public var file: String
    public var line: Int

    public init(code: Code, rawCode: Int32 = 0, name: String = "", message: String, isRetriable: Bool = false,
                isFatal: Bool = false, file: String = #fileID, line: Int = #line) {
        self.code = code; self.rawCode = rawCode; self.name = name; self.message = message
        self.isRetriable = isRetriable; self.isFatal = isFatal; self.file = file; self.line = line
    }

    init(code: Code, err: rd_kafka_resp_err_t, context: String? = nil, file: String = #fileID, line: Int = #line) {
        let name = String(cString: rd_kafka_err2name(err))
        let text = String(cString: rd_kafka_err2str(err))
        self.init(code: code, rawCode: err.rawValue, name: name,
                  message: context.map { "\($0): \(text)" } ?? text,
                  isRetriable: KafkaError.retriable(err), isFatal: err == RD_KAFKA_RESP_ERR__FATAL,
                  file: file, line: line)
    }

    /// Errors that go away by themselves (leadership moves, timeouts, transport).
    static func retriable(_ err: rd_kafka_resp_err_t) -> Bool {
        switch err {
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
             RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
             RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
             RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
             RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, RD_KAFKA_RESP_ERR__RESOLVE, RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
             RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
             RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            return true
        default:
            return false
        }
    }

    /// A call reached a producer that was closed (or is being replaced): nothing was sent.
    /// Retrying with the current producer is safe.
    public static var producerClosed: KafkaError {
        KafkaError(code: .closed, name: "_PRODUCER_CLOSED", message: "the Kafka producer was closed (or is being recreated) before the record was reported", isRetriable: true)
    }

    public var description: String {
        "Kafka \(code)" + (name.isEmpty ? "" : " \(name)") + ": \(message)"
    }
}
