public import Metrics

/// The relay's metrics, through swift-metrics (the CLI bootstraps the Prometheus backend).
/// Names follow Prometheus conventions; labels never carry row data or credentials.
public struct RelayMetrics: Sendable {
    public let published = Counter(label: "outbox_relay_events_published_total")
    public let inFlight = Gauge(label: "outbox_relay_events_in_flight")
    /// Commit timestamp (from the WAL) to the broker's acknowledgement.
    public let commitToAck = Timer(label: "outbox_relay_commit_to_ack_seconds", preferredDisplayUnit: .seconds)
    public let slotLagBytes = Gauge(label: "outbox_relay_slot_lag_bytes")
    public let confirmedLSN = Gauge(label: "outbox_relay_confirmed_flush_lsn")
    public let reconnects = Counter(label: "outbox_relay_reconnects_total")
    public let producerRecreated = Counter(label: "outbox_relay_producer_recreated_total")
    public let streaming = Gauge(label: "outbox_relay_streaming")
    public let sweeperResends = Counter(label: "outbox_sweeper_resends_total")
    public let retentionDeleted = Counter(label: "outbox_retention_deleted_total")
    public let spilledBytes = Counter(label: "outbox_relay_spilled_bytes_total")
    /// Notify mode: 1 while the relay is idle and asks writers to NOTIFY, 0 while it is
    /// busy reading the slot (writers skip NOTIFY) or stopped.
    public let doorbellListening = Gauge(label: "outbox_relay_notify_doorbell_listening")

    public init() {}

    /// 1 while publishing to `topic` is paused by an operator problem (`problem`:
    /// authorization, unknown_topic, broker_policy, broker_size_limit), 0 once resumed.
    public func paused(topic: String, problem: String) -> Gauge {
        Gauge(label: "outbox_relay_publishing_paused", dimensions: [("topic", topic), ("problem", problem)])
    }

    /// Rows marked DEAD and copied to the dead-letter topic, by reason.
    public func deadLettered(_ reason: String) -> Counter {
        Counter(label: "outbox_dead_letters_total", dimensions: [("reason", reason)])
    }
}
