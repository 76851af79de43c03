internal import CRdKafka

extension KafkaError {
    /// An error for librdkafka's code `err`, with its name and text; `context` says what
    /// was being done (never a configuration value).
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

}

/// The text librdkafka wrote into a NUL-terminated error buffer.
func errorString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
