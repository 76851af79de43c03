internal import CRdKafka

/// librdkafka's in-process mock cluster, for injecting broker faults on top of the tests
/// that run against a real broker (never instead of them).
///
/// Point a producer or consumer at `bootstrapServers`, then push per-request errors: the
/// next requests of that API kind fail with those codes, in order.
public final class KafkaMockCluster: @unchecked Sendable {
    /// Kafka protocol API keys used with `pushRequestErrors`.
    public enum APIKey: Int16, Sendable {
        case produce = 0, fetch = 1, metadata = 3, offsetCommit = 8, initProducerID = 22
    }

    private let rk: OpaquePointer
    private let mock: OpaquePointer
    public let bootstrapServers: String

    public init(brokers: Int32 = 3) throws(KafkaError) {
        let conf = rd_kafka_conf_new()
        var errorBuffer = [CChar](repeating: 0, count: 512)
        _ = rd_kafka_conf_set(conf, "client.id", "outbox-mock-cluster-owner", &errorBuffer, errorBuffer.count)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errorBuffer, errorBuffer.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .configuration, message: "could not create the mock cluster's owner: \(errorString(errorBuffer))")
        }
        guard let mock = rd_kafka_mock_cluster_new(rk, brokers) else {
            rd_kafka_destroy(rk)
            throw KafkaError(code: .configuration, message: "librdkafka could not start a mock cluster")
        }
        self.rk = rk
        self.mock = mock
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(mock))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(mock)
        rd_kafka_destroy(rk)
    }

    public func createTopic(_ name: String, partitions: Int32 = 4, replicationFactor: Int32 = 1) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(mock, name, partitions, replicationFactor)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .configuration, err: err, context: "creating mock topic \(name)") }
    }

    /// The next `errors.count` requests of kind `api` fail with these Kafka error codes
    /// (the protocol's numbers, for example 6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT,
    /// 10 MSG_SIZE_TOO_LARGE, 29 TOPIC_AUTHORIZATION_FAILED, 45 OUT_OF_ORDER_SEQUENCE_NUMBER).
    public func pushRequestErrors(_ api: APIKey, _ errors: [Int32]) {
        var codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(mock, api.rawValue, codes.count, &codes)
    }

    /// Every produce/fetch on `topic` fails with `code` until cleared with code 0.
    public func setTopicError(_ topic: String, code: Int32) {
        rd_kafka_mock_topic_set_error(mock, topic, rd_kafka_resp_err_t(rawValue: code))
    }
}
