public import Metrics

/// Consumer metrics (swift-metrics; the CLI exports them to Prometheus).
public struct ConsumerMetrics: Sendable {
    public let duplicates = Counter(label: "outbox_consumer_duplicates_total")
    public let lag = Gauge(label: "outbox_consumer_lag_messages")
    /// Messages applied per database transaction (the unit is in the name, as Prometheus asks).
    public let batchSize = Recorder(label: "outbox_consumer_batch_size_messages")
    public let transactionRetries = Counter(label: "outbox_consumer_transaction_retries_total")
    /// Partitions this member holds; 0 while it stands by.
    public let assignedPartitions = Gauge(label: "outbox_consumer_assigned_partitions")

    public init() {}

    public func applied(_ type: String) -> Counter { Counter(label: "outbox_consumer_applied_total", dimensions: [("type", type)]) }
    public func deadLettered(_ reason: String) -> Counter {
        Counter(label: "outbox_consumer_dead_letters_total", dimensions: [("reason", reason)])
    }
}
