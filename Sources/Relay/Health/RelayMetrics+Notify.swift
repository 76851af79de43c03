public import Metrics

extension RelayMetrics {
    /// `outbox_relay_notify_listen_working{slot="outbox_relay"}`: in notify mode, 1 when the
    /// relay's notification to itself arrived, 0 when it did not (LISTEN does not work on
    /// this connection, typically a transaction pooler: the relay then polls the slot,
    /// `DeafPolling`). Absent in stream mode and until the first probe's answer.
    public func notifyListenWorking(slot: String) -> Gauge {
        Gauge(label: "outbox_relay_notify_listen_working", dimensions: [("slot", slot)])
    }
}
