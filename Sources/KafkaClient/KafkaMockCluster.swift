/// librdkafka's in-process mock cluster, for injecting broker faults on top of the tests
/// that run against a real broker (never instead of them).
///
/// Point a producer or consumer at `bootstrapServers`, then push per-request errors (the
/// next requests of that API kind fail with those codes, in order), move partition
/// leaders, or take brokers down and up. Brokers are numbered 1 through `brokers`. The
/// mock keeps what was produced, so a consumer on it reads everything back; it does not
/// replicate (a follower holds no copy) and has no ISR: see docs/kafka-cluster.md.
public final class KafkaMockCluster: Sendable {
    /// Kafka protocol API keys used with `pushRequestErrors`.
    public enum APIKey: Int16, Sendable {
        case produce = 0, fetch = 1, metadata = 3, offsetCommit = 8, initProducerID = 22
    }

    /// Kafka protocol error codes the fault tests inject.
    public enum ErrorCode {
        public static let notLeaderOrFollower: Int32 = 6
        public static let requestTimedOut: Int32 = 7
        public static let notEnoughReplicas: Int32 = 19
        public static let notEnoughReplicasAfterAppend: Int32 = 20
    }

    private let mock: RDKafkaMockCluster
    public let bootstrapServers: String
    /// The broker ids, 1 through the count given to `init`.
    public let brokerIDs: [Int32]

    public init(brokers: Int32 = 3) throws(KafkaError) {
        mock = try RDKafkaMockCluster(brokers: brokers)
        bootstrapServers = mock.bootstraps
        brokerIDs = Array(1...max(1, brokers))
    }

    public func createTopic(_ name: String, partitions: Int32 = 4, replicationFactor: Int32 = 1) throws(KafkaError) {
        try mock.createTopic(name, partitions: partitions, replicationFactor: replicationFactor)
    }

    /// The next `errors.count` requests of kind `api` fail with these Kafka error codes
    /// (the protocol's numbers, for example 6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT,
    /// 10 MSG_SIZE_TOO_LARGE, 29 TOPIC_AUTHORIZATION_FAILED, 45 OUT_OF_ORDER_SEQUENCE_NUMBER).
    public func pushRequestErrors(_ api: APIKey, _ errors: [Int32]) {
        mock.pushRequestErrors(apiKey: api.rawValue, errors)
    }

    /// Every produce/fetch on `topic` fails with `code` until cleared with code 0.
    public func setTopicError(_ topic: String, code: Int32) {
        mock.setTopicError(topic, code: code)
    }

    /// Makes `broker` the leader of `topic`'s `partition`, as a leader election would;
    /// clients learn it from NOT_LEADER_OR_FOLLOWER answers and a metadata refresh.
    public func setPartitionLeader(_ topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try mock.setPartitionLeader(topic, partition: partition, broker: broker)
    }

    /// Closes the broker's connections and refuses new ones (its data stays).
    public func setBrokerDown(_ broker: Int32) throws(KafkaError) { try mock.setBrokerDown(broker) }

    /// Brings `broker` back on the port it had. librdkafka rebinds that port and aborts the
    /// whole process when it cannot (an assertion in rdkafka_mock.c): another socket may have
    /// taken the port while the broker was down (a CI run lost every test of a suite that
    /// way). So the port is tried first, and a taken one throws `mockBrokerPortTaken` here;
    /// the caller may wait and try again.
    public func setBrokerUp(_ broker: Int32) throws(KafkaError) {
        if let port = port(of: broker), !LoopbackPort.isBindable(port) {
            throw KafkaError(code: .configuration, name: Self.mockBrokerPortTaken,
                             message: "mock broker \(broker) cannot come back up: its port \(port) was taken while it was down")
        }
        try mock.setBrokerUp(broker)
    }

    /// `KafkaError.name` of `setBrokerUp`'s refusal.
    public static let mockBrokerPortTaken = "MOCK_BROKER_PORT_TAKEN"

    /// The port of `broker` (brokers are listed in id order in `bootstrapServers`).
    private func port(of broker: Int32) -> Int? {
        let servers = bootstrapServers.split(separator: ",")
        guard broker >= 1, Int(broker) <= servers.count else { return nil }
        return servers[Int(broker) - 1].split(separator: ":").last.flatMap { Int($0) }
    }

    /// Delays every answer of `broker` by `milliseconds`.
    public func setBrokerRTT(_ broker: Int32, milliseconds: Int32) throws(KafkaError) {
        try mock.setBrokerRTT(broker, milliseconds: milliseconds)
    }
}
