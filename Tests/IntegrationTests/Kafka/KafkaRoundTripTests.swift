import EphemeralServers
import Foundation
import KafkaClient
import Logging
import Synchronization
import Testing

@Suite("librdkafka wrappers against Tansu")
struct KafkaRoundTripTests {
    @Test("1,000 keyed messages come back in per-key order, with every delivery report")
    func keyedRoundTrip() async throws {
        try await withTestContext(broker: true) { ctx in
            let reports = Mutex<[UInt64: DeliveryReport]>([:])
            let producer = try KafkaProducer(
                configuration: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers),
                logger: Logger(label: "test-producer"),
                onDelivery: { delivered in reports.withLock { for report in delivered { $0[report.token] = report } } })
            let topic = "roundtrip.\(UUID().uuidString.prefix(8))"
            for i in 1...1_000 {
                try producer.produce(topic: topic, key: Array("key-\(i % 17)".utf8), value: Array("\(i)".utf8),
                                     headers: [("outbox-id", Array("\(i)".utf8))], token: UInt64(i))
            }
            #expect(await producer.flush(timeout: .seconds(30)))
            let delivered = reports.withLock { $0 }
            #expect(delivered.count == 1_000)
            #expect(delivered.values.allSatisfy { $0.error == nil && $0.offset >= 0 })
            await producer.close()

            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: [topic], count: 1_000)
            #expect(messages.count == 1_000)
            var lastPerKey: [String: Int] = [:]
            var partitionOfKey: [String: Int32] = [:]
            for message in messages {
                let value = Int(message.valueString)!
                let key = message.keyString
                #expect(value > lastPerKey[key, default: 0], "key \(key): \(value) after \(lastPerKey[key, default: 0])")
                lastPerKey[key] = value
                #expect(message.headerString("outbox-id") == message.valueString)
                #expect(partitionOfKey[key, default: message.partition] == message.partition, "a key must stay on one partition")
                partitionOfKey[key] = message.partition
            }
            #expect(lastPerKey.count == 17)
        }
    }

    /// The bench states its partition count instead of inheriting the broker's auto-creation
    /// default, because the relay's latency depends on how many partitions share a connection.
    @Test("a topic the harness creates with 7 partitions has 7: 200 keys land on partitions 0 through 6")
    func createdTopicHasItsPartitions() async throws {
        try await withTestContext(broker: true) { ctx in
            let topic = "created.\(UUID().uuidString.prefix(8))"
            try await ctx.broker!.createTopic(topic, partitions: 7)
            let partitions = Mutex<Set<Int32>>([])
            let producer = try KafkaProducer(
                configuration: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers),
                logger: Logger(label: "test-producer"),
                onDelivery: { delivered in partitions.withLock { for report in delivered { $0.insert(report.partition) } } })
            for i in 1...200 {
                try producer.produce(topic: topic, key: Array("BOOK:\(i)".utf8), value: Array("{}".utf8), headers: [], token: UInt64(i))
            }
            #expect(await producer.flush(timeout: .seconds(30)))
            await producer.close()
            #expect(partitions.withLock { $0 } == Set(0..<7), "auto-creation would have given the broker's default count")
        }
    }

    @Test("an unreachable broker fails within a bounded time and names host and port, never the password")
    func unreachableBroker() async throws {
        let port = freeLoopbackPort()
        let producer = try KafkaProducer(
            configuration: KafkaConfiguration(bootstrapServers: "127.0.0.1:\(port)", properties: [
                "security.protocol": "sasl_plaintext", "sasl.mechanisms": "PLAIN",
                "sasl.username": "relay", "sasl.password": "hunter2-secret",
            ]),
            logger: Logger(label: "test-producer"), onDelivery: { _ in })
        let started = ContinuousClock.now
        let error = await #expect(throws: KafkaError.self) { try await producer.checkConnectivity(timeout: .seconds(2)) }
        // The 2 s timeout, not librdkafka's minute-long defaults: bounded well above 2 s
        // because a loaded CI run (the whole suite in parallel) once took 5.16 s.
        #expect(ContinuousClock.now - started < .seconds(8))
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains("127.0.0.1:\(port)"))
        #expect(!text.contains("hunter2"))
        #expect(error?.isRetriable == true)
        await producer.close(timeout: .zero)
    }

    @Test("the configuration's description redacts secrets")
    func redaction() {
        let config = KafkaConfiguration(bootstrapServers: "b:9092", properties: [
            "sasl.password": "hunter2", "ssl.key.password": "k3y", "ssl.keystore.password": "s", "linger.ms": "5",
        ])
        let text = config.redactedDescription
        #expect(!text.contains("hunter2") && !text.contains("k3y"))
        #expect(text.contains("linger.ms=5"))
    }

    @Test("an unknown librdkafka property is a configuration error that names it")
    func badProperty() {
        let error = #expect(throws: KafkaError.self) {
            _ = try KafkaProducer(configuration: KafkaConfiguration(properties: ["no.such.setting": "1"]),
                                  logger: Logger(label: "t"), onDelivery: { _ in })
        }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("no.such.setting") == true)
    }

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
