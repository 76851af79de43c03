public import Metrics

extension RelayMetrics {
    /// `outbox_relay_slot_failover_ready{slot="outbox_relay"}`: 1 when the slot survives a
    /// primary failover with no operator (a failover slot on PostgreSQL 17+, every standby's
    /// physical slot named in `synchronized_standby_slots`), 0 otherwise. Set at each session
    /// start by the active relay; `outbox-relay status` says why it is 0.
    public func slotFailoverReady(slot: String) -> Gauge {
        Gauge(label: "outbox_relay_slot_failover_ready", dimensions: [("slot", slot)])
    }
}
