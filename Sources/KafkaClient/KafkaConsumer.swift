import Foundation
public import Logging
import Synchronization

/// A consumer-group member on librdkafka's high-level consumer, with manual offset commits.
///
/// Its methods block, so run it on a dedicated thread. Rebalance callbacks run inside
/// `poll`, on that same thread: `onRevoke` can commit what was processed before the
/// partitions go, which is what makes effects exactly-once across rebalances.
public final class KafkaConsumer: @unchecked Sendable {
    public static let defaultProperties: [String: String] = [
        "enable.auto.commit": "false",         // offsets are committed after the database commit
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range,roundrobin",
        "session.timeout.ms": "10000",
        "heartbeat.interval.ms": "1000",
        "fetch.wait.max.ms": "10",             // low latency: the broker answers a fetch within 10 ms
        "queued.max.messages.kbytes": "16384",  // bounded prefetch memory
        "topic.metadata.refresh.interval.ms": "5000",  // notice newly created topics within seconds
    ]

    private let client: RDKafkaClient
    private let context: Unmanaged<ConsumerContext>
    private let closed = Atomic<Bool>(false)

    public init(configuration: KafkaConfiguration, groupID: String, logger: Logger,
                onAssign: @escaping @Sendable ([TopicPartition]) -> Void = { _ in },
                onRevoke: @escaping @Sendable ([TopicPartition]) -> Void = { _ in }) throws(KafkaError) {
        var defaults = KafkaConsumer.defaultProperties
        defaults["group.id"] = groupID
        let context = Unmanaged.passRetained(ConsumerContext(logger: logger, onAssign: onAssign, onRevoke: onRevoke))
        do {
            client = try RDKafkaClient.makeConsumer(defaults: defaults, configuration: configuration, context: context)
        } catch {
            context.release()
            throw error
        }
        self.context = context
    }

    deinit { close() }

    public func subscribe(_ topics: [String]) throws(KafkaError) {
        try client.subscribe(topics)
    }

    /// Waits up to `timeout` for the next message. Partition EOF and transient errors return
    /// nil; errors that need attention throw.
    public func poll(timeout: Duration) throws(KafkaError) -> KafkaMessage? {
        // A broker refused the credentials or the certificate (reported to the error
        // callback during an earlier poll): fail closed instead of polling on.
        if let failure = context.takeUnretainedValue().securityFailure { throw failure }
        return try client.consumerPoll(timeout: timeout)
    }

    /// Commits `offsets`, the NEXT offsets to read (last processed + 1). Synchronous by
    /// default. `asynchronously` queues the commit and returns at once: a failure is then
    /// never reported, so use it only where a lost commit costs a redelivery the caller
    /// deduplicates, and commit synchronously before giving partitions up.
    public func commit(_ offsets: [TopicPartition: Int64], asynchronously: Bool = false) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        try client.commit(offsets, asynchronously: asynchronously)
    }

    /// Committed offsets for `partitions` (next offset to read; -1001 when none).
    public func committed(_ partitions: [TopicPartition], timeout: Duration = .seconds(5)) throws(KafkaError) -> [TopicPartition: Int64] {
        try client.committed(partitions, timeout: timeout)
    }

    /// Messages behind the high watermark, summed over the current assignment, from the
    /// consumer's position. Note: Tansu 0.6 reports watermarks inaccurately, so against it
    /// this figure is approximate; against Kafka it is exact.
    public func lag(timeout: Duration = .seconds(2)) -> Int64? {
        guard let positions = client.positions() else { return nil }
        var total: Int64 = 0
        for (tp, offset) in positions {
            guard let (low, high) = try? client.watermarks(tp, timeout: timeout) else { return nil }
            total += max(0, high - (offset >= 0 ? offset : low))
        }
        return total
    }

    /// Lag of this consumer's group on `topics` without joining it: committed offsets
    /// against high watermarks, per partition from the cluster metadata. A partition where
    /// the group has no committed offset yet counts whole.
    public func groupLag(topics: [String], timeout: Duration = .seconds(5)) throws(KafkaError) -> Int64 {
        var partitions: [TopicPartition] = []
        for topic in topics { partitions += try client.partitions(of: topic, timeout: timeout) }
        guard !partitions.isEmpty else { return 0 }
        let committed = try committed(partitions, timeout: timeout)
        var total: Int64 = 0
        for tp in partitions {
            let (low, high) = try client.watermarks(tp, timeout: timeout)
            let position = committed[tp].flatMap { $0 >= 0 ? $0 : nil } ?? low
            total += max(0, high - position)
        }
        return total
    }

    /// Current assignment.
    public func assignment() -> [TopicPartition] { client.assignment() }

    /// Leaves the group (running the revoke callback, so offsets can be committed) and
    /// destroys the consumer.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        client.closeConsumer()
        context.release()
    }
}
