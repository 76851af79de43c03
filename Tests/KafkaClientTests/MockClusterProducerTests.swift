import KafkaClient
import Logging
import Testing

/// The producer against librdkafka's in-process mock cluster: broker errors on loopback,
/// no server process.
@Suite("Producer on the mock cluster")
struct MockClusterProducerTests {
    @Test("mock cluster: a retriable produce error is retried; the delivery succeeds")
    func mockClusterRetriable() async throws {
        let mock = try KafkaMockCluster()
        try mock.createTopic("mock.retry")
        mock.pushRequestErrors(.produce, [6, 7, 6])  // NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: mock.bootstrapServers),
                                         logger: Logger(label: "t"), onDelivery: { _ in })
        let report = try await producer.send(topic: "mock.retry", key: Array("k".utf8), value: Array("v".utf8))
        #expect(report.error == nil)
        await producer.close()
    }

    @Test("mock cluster: MSG_SIZE_TOO_LARGE is a permanent per-message error")
    func mockClusterPermanent() async throws {
        let mock = try KafkaMockCluster()
        try mock.createTopic("mock.big")
        mock.pushRequestErrors(.produce, [10])
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: mock.bootstrapServers),
                                         logger: Logger(label: "t"), onDelivery: { _ in })
        let error = await #expect(throws: KafkaError.self) {
            _ = try await producer.send(topic: "mock.big", key: Array("k".utf8), value: Array("v".utf8))
        }
        #expect(error?.name == "MSG_SIZE_TOO_LARGE")
        #expect(error?.isRetriable == false)
        await producer.close()
    }
}
