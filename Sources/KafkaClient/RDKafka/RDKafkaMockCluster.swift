internal import CRdKafka

/// librdkafka's in-process mock cluster (`rdkafka_mock.h`) and the handle that owns it.
/// Every call goes to the mock's own thread and returns once it has taken effect.
final class RDKafkaMockCluster: @unchecked Sendable {
    private let rk: OpaquePointer
    private let mock: OpaquePointer

    init(brokers: Int32) throws(KafkaError) {
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
    }

    deinit {
        rd_kafka_mock_cluster_destroy(mock)
        rd_kafka_destroy(rk)
    }

    var bootstraps: String { String(cString: rd_kafka_mock_cluster_bootstraps(mock)) }

    func createTopic(_ name: String, partitions: Int32, replicationFactor: Int32) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(mock, name, partitions, replicationFactor)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .configuration, err: err, context: "creating mock topic \(name)") }
    }

    func pushRequestErrors(apiKey: Int16, _ codes: [Int32]) {
        var errors = codes.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(mock, apiKey, errors.count, &errors)
    }

    func setTopicError(_ topic: String, code: Int32) {
        rd_kafka_mock_topic_set_error(mock, topic, rd_kafka_resp_err_t(rawValue: code))
    }

    func setPartitionLeader(_ topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_partition_set_leader(mock, topic, partition, broker), "moving the leader of \(topic)/\(partition) to broker \(broker)")
    }

    func setBrokerDown(_ broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_down(mock, broker), "taking mock broker \(broker) down")
    }

    func setBrokerUp(_ broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_up(mock, broker), "bringing mock broker \(broker) up")
    }

    func setBrokerRTT(_ broker: Int32, milliseconds: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_rtt(mock, broker, milliseconds), "delaying mock broker \(broker)")
    }

    private func check(_ err: rd_kafka_resp_err_t, _ context: String) throws(KafkaError) {
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .configuration, err: err, context: context) }
    }
}
