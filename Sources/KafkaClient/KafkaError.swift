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

    /// A call reached a producer that was closed (or is being replaced): nothing was sent.
    /// Retrying with the current producer is safe.
    public static var producerClosed: KafkaError {
        KafkaError(code: .closed, name: "_PRODUCER_CLOSED", message: "the Kafka producer was closed (or is being recreated) before the record was reported", isRetriable: true)
    }

    public var description: String {
        "Kafka \(code)" + (name.isEmpty ? "" : " \(name)") + ": \(message)"
    }
}
