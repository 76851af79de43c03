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
            producer.start()
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
            producer.start()
            for i in 1...200 {
                try producer.produce(topic: topic, key: Array("BOOK:\(i)".utf8), value: Array("{}".utf8), headers: [], token: UInt64(i))
            }
            #expect(await producer.flush(timeout: .seconds(30)))
            await producer.close()
            #expect(partitions.withLock { $0 } == Set(0..<7), "auto-creation would have given the broker's default count")
        }
    }
}
