import Foundation
@testable import KafkaClient
import Logging
import Synchronization
import Testing

/// Threads start in `start()`, not in `init` (issue 33 item 4): constructing a producer
/// spawns nothing, as swift-service-lifecycle asks of a library's `init`.
@Suite("Poller thread lifecycle")
struct PollerThreadTests {
    @Test("a poller runs its poll only from start() on, and stop() ends it")
    func pollsOnlyAfterStart() async throws {
        let polls = Atomic<Int>(0)
        let poller = PollerThread(name: "poller-test") {
            polls.add(1, ordering: .relaxed)
            usleep(1_000)
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(polls.load(ordering: .relaxed) == 0, "init must not start the thread")
        #expect(!poller.isRunning)

        poller.start()
        poller.start()  // idempotent
        let deadline = ContinuousClock.now + .seconds(10)
        while polls.load(ordering: .relaxed) == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(polls.load(ordering: .relaxed) > 0)
        #expect(poller.isRunning)

        poller.stop()
        let afterStop = polls.load(ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(100))
        #expect(polls.load(ordering: .relaxed) == afterStop, "no poll after stop() returned")
        poller.start()  // a stopped poller stays stopped
        #expect(!poller.isRunning)
    }

    @Test("a poller stopped before it started never polls")
    func stopBeforeStart() async throws {
        let polls = Atomic<Int>(0)
        let poller = PollerThread(name: "poller-test") { polls.add(1, ordering: .relaxed) }
        poller.stop()
        poller.start()
        try await Task.sleep(for: .milliseconds(100))
        #expect(polls.load(ordering: .relaxed) == 0)
    }

    @Test("a producer polls from start(), not from init; close stops it")
    func producerStartsInStart() throws {
        // No broker is needed: librdkafka connects lazily, and nothing is produced.
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: "127.0.0.1:1"),
                                         logger: Logger(label: "poller-test"), onDelivery: { _ in })
        #expect(!producer.isPolling)
        producer.start()
        #expect(producer.isPolling)
        producer.close(timeout: .zero)
        #expect(!producer.isPolling)
    }
}
