import EphemeralServers
import Foundation
import KafkaClient
import Logging
import Testing

/// Issue 13, item 6: a producer replaced while the sweeper or the dead-letter worker still
/// hold it. Every call that comes late meets a closed producer and a clear, retriable
/// error; none reaches a destroyed librdkafka handle.
@Suite("Kafka producer: safe after close")
struct ProducerCloseTests {
    func records(_ count: Int) -> [OutgoingRecord] {
        (0..<count).map { OutgoingRecord(topic: "close.test", key: Array("k\($0 % 3)".utf8), value: Array("\($0)".utf8)) }
    }

    @Test("sends waiting on a frozen broker fail with producerClosed when the producer closes; later calls never reach librdkafka")
    func closeWhileSending() async throws {
        try await withTestContext(broker: true) { ctx in
            let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers),
                                             logger: Logger(label: "close-test"), onDelivery: { _ in })
            #expect(try await producer.send(topic: "close.test", key: [1], value: [1]).error == nil)
            ctx.broker!.freeze()
            defer { ctx.broker!.thaw() }
            try await Task.sleep(for: .milliseconds(200))  // SIGSTOP takes effect asynchronously
            let waiting = Task { await producer.sendInOrder(records(50)) }
            try await Task.sleep(for: .milliseconds(500))
            // Concurrent callers keep using the producer while it closes.
            let racers = Task.detached {
                var failures = 0
                for i in 0..<2_000 {
                    do { try producer.produce(topic: "close.test", key: [1], value: [UInt8(i % 256)], headers: [], token: UInt64(i + 1)) }
                    catch { failures += 1 }
                }
                return failures
            }
            await producer.close(timeout: .zero)
            _ = await racers.value
            let results = await waiting.value
            // Every waiting send resolved when the producer closed (none hangs): delivered before
            // the freeze took hold, or failed as closed or purged.
            #expect(results.count == 50)
            for case .failure(let error) in results {
                #expect(error.code == .closed || error.name.hasPrefix("_PURGE"), "\(error)")
            }
            // After close: a clear, retriable error, no crash.
            let late = await producer.sendInOrder(records(3))
            for result in late {
                guard case .failure(let error) = result else { Issue.record("a closed producer sent a record"); continue }
                #expect(error.code == .closed && error.isRetriable, "\(error)")
            }
            #expect(throws: KafkaError.self) {
                try producer.produce(topic: "close.test", key: [1], value: [1], headers: [], token: 1)
            }
            #expect(throws: KafkaError.self) { try producer.sendBlocking(topic: "close.test", key: nil, value: [1]) }
            #expect(producer.outstanding == 0)
            #expect(!producer.flushBlocking(timeout: .milliseconds(10)))
        }
    }
}
