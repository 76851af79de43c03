import Foundation
public import KafkaClient
public import Metrics
public import PGOutput
import RelayCore

/// The relay's metrics, through swift-metrics (the CLI bootstraps the Prometheus backend).
/// Names follow Prometheus conventions: everything the `run` process exports starts with
/// `outbox_relay_` (the consumer's with `outbox_consumer_`), and the alert rules and the
/// dashboard under deploy/ are written against these names. Every series carries the `slot`
/// label: the slot, not the host, identifies a pipeline (an active relay and its standby
/// share one; shards have one each). Labels never carry row data or credentials.
public struct RelayMetrics: Sendable {
    public let published: Counter
    public let inFlight: Gauge
    /// Commit timestamp (from the WAL) to the broker's acknowledgement.
    public let commitToAck: Timer
    /// Commit timestamp to the relay reading the transaction's Commit: the database's and
    /// the network's share of `commitToAck` (the rest is the producer's and the broker's).
    public let commitToCapture: Timer
    public let slotLagBytes: Gauge
    /// The confirmed flush LSN as its two 32-bit halves: one float64 gauge would round LSNs
    /// above 2^53 (see `LSN.high`).
    private let confirmedLSNHigh: Gauge
    private let confirmedLSNLow: Gauge
    public let reconnects: Counter
    public let producerRecreated: Counter
    public let streaming: Gauge
    public let spilledBytes: Counter
    /// Transactions PostgreSQL sent again after a crash or a reconnect that were already
    /// acknowledged, and were therefore skipped (`AcknowledgedHorizon`).
    public let replayedTransactionsSkipped: Counter
    /// Notify mode: 1 while the relay is idle and asks writers to NOTIFY, 0 while it is
    /// busy reading the slot (writers skip NOTIFY) or stopped.
    public let doorbellListening: Gauge
    /// Stream mode: 1 while the relay is behind and reads WAL in batches (`CatchUpReads`).
    public let catchUpReads: Gauge
    let slot: [(String, String)]

    /// `tables`: the outbox tables the relay captures, whose per-table series start at 0.
    public init(slot: String = "", tables: [OutboxTable] = [.default]) {
        let slot = [("slot", slot)]
        self.slot = slot
        published = Counter(label: "outbox_relay_events_published_total", dimensions: slot)
        inFlight = Gauge(label: "outbox_relay_events_in_flight", dimensions: slot)
        commitToAck = Timer(label: "outbox_relay_commit_to_ack_seconds", dimensions: slot, preferredDisplayUnit: .seconds)
        commitToCapture = Timer(label: "outbox_relay_commit_to_capture_seconds", dimensions: slot, preferredDisplayUnit: .seconds)
        slotLagBytes = Gauge(label: "outbox_relay_slot_lag_bytes", dimensions: slot)
        confirmedLSNHigh = Gauge(label: "outbox_relay_confirmed_flush_lsn_high", dimensions: slot)
        confirmedLSNLow = Gauge(label: "outbox_relay_confirmed_flush_lsn_low", dimensions: slot)
        reconnects = Counter(label: "outbox_relay_reconnects_total", dimensions: slot)
        producerRecreated = Counter(label: "outbox_relay_producer_recreated_total", dimensions: slot)
        streaming = Gauge(label: "outbox_relay_streaming", dimensions: slot)
        spilledBytes = Counter(label: "outbox_relay_spilled_bytes_total", dimensions: slot)
        replayedTransactionsSkipped = Counter(label: "outbox_relay_replayed_transactions_skipped_total", dimensions: slot)
        doorbellListening = Gauge(label: "outbox_relay_notify_doorbell_listening", dimensions: slot)
        catchUpReads = Gauge(label: "outbox_relay_catch_up_reads", dimensions: slot)
        // Every series exists from the start at 0, so `increase()` sees the first DEAD row
        // or re-send (a series born at 1 shows no increase) and dashboards have no gaps.
        for table in tables {
            for reason in DeadLetterReason.allCases { _ = deadLettered(reason.rawValue, table: table) }
            _ = sweeperResends(table: table)
            _ = retentionDeleted(table: table)
        }
    }

    /// Now, in PostgreSQL's timestamp form (microseconds since 2000-01-01), to compare with
    /// the commit timestamps the WAL carries.
    static func postgresNow() -> Int64 {
        PostgresEpoch.fromUnixMicroseconds(Int64(Date().timeIntervalSince1970 * 1_000_000))
    }

    /// Records on `timer` the time from `commitTime` (a WAL commit timestamp) to `now`. A
    /// local clock behind the server's records nothing rather than a negative time.
    func recordSinceCommit(_ commitTime: Int64, on timer: Timer, now: Int64 = postgresNow()) {
        if now >= commitTime { timer.recordNanoseconds((now - commitTime) * 1_000) }
    }

    /// Records the LSN last confirmed to PostgreSQL, exactly (high half first: a scrape that
    /// lands between the two writes sees at most one half of an old value).
    public func recordConfirmed(_ lsn: LSN) {
        confirmedLSNHigh.record(Int64(lsn.high))
        confirmedLSNLow.record(Int64(lsn.low))
    }

    /// 1 while publishing to `topic` is paused by an operator problem (`problem`:
    /// authorization, unknown_topic, broker_policy, broker_size_limit), 0 once resumed.
    public func paused(topic: String, problem: String) -> Gauge {
        Gauge(label: "outbox_relay_publishing_paused", dimensions: slot + [("topic", topic), ("problem", problem)])
    }

    /// The produce round trip to each broker over librdkafka's last statistics window
    /// (`outbox_relay_kafka_broker_rtt_seconds{broker,quantile}`, quantiles 0.5 and 0.99): the
    /// broker's and the network's share of commit→ack. A broker appears once it has answered
    /// a produce request in a window; its series keep their last values when it goes quiet.
    public func recordBrokerRoundTrips(_ trips: [BrokerRoundTrip]) {
        for trip in trips {
            for (quantile, seconds) in [("0.5", trip.p50Seconds), ("0.99", trip.p99Seconds)] {
                Gauge(label: "outbox_relay_kafka_broker_rtt_seconds", dimensions: slot + [("broker", trip.broker), ("quantile", quantile)])
                    .record(seconds)
            }
        }
    }

    /// Rows marked DEAD and copied to the dead-letter topic, by reason and outbox table.
    public func deadLettered(_ reason: String, table: OutboxTable) -> Counter {
        Counter(label: "outbox_relay_dead_letters_total", dimensions: slot + [("table", table.qualifiedName), ("reason", reason)])
    }

    /// Rows of `table` re-sent by its sweeper.
    public func sweeperResends(table: OutboxTable) -> Counter {
        Counter(label: "outbox_relay_sweeper_resends_total", dimensions: slot + [("table", table.qualifiedName)])
    }

    /// Rows of `table` deleted by retention.
    public func retentionDeleted(table: OutboxTable) -> Counter {
        Counter(label: "outbox_relay_retention_deleted_total", dimensions: slot + [("table", table.qualifiedName)])
    }
}
