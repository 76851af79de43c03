import Foundation
import KafkaClient
import Logging
import PostgresClient
import Threading

/// Reads topics from the beginning with a throwaway consumer group until `count`
/// messages arrived or `timeout` passed. Counting messages, never watermarks: Tansu
/// 0.6.0 reports high-water offsets wrongly.
func readMessages(bootstrapServers: String, topics: [String], count: Int,
                  timeout: Duration = .seconds(60), idle: Duration? = nil) async throws -> [KafkaMessage] {
    try await runBlocking {
        let consumer = try KafkaConsumer(
            configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, clientID: "test-reader"),
            groupID: "test-reader-\(UUID().uuidString)", logger: Logger(label: "test-reader"))
        defer { consumer.close() }
        try consumer.subscribe(topics)
        var messages: [KafkaMessage] = []
        let deadline = ContinuousClock.now + timeout
        var last: ContinuousClock.Instant?
        while messages.count < count, ContinuousClock.now < deadline {
            if let message = try consumer.poll(timeout: .milliseconds(200)) {
                messages.append(message)
                last = ContinuousClock.now
            } else if let idle, let last, ContinuousClock.now - last > idle {
                break  // the flow stopped: everything that was coming has come
            }
        }
        return messages
    }
}

extension KafkaMessage {
    var keyString: String { key.map { String(decoding: $0, as: UTF8.self) } ?? "" }
    var valueString: String { String(decoding: value, as: UTF8.self) }
    func headerString(_ name: String) -> String? { header(name).map { String(decoding: $0, as: UTF8.self) } }
}
