public import Metrics

extension RelayMetrics {
    /// `outbox_relay_shard{shard="1",shards="3",slot="outbox_relay_1"} 1` on a sharded relay:
    /// which shard this process serves, so every other series it exports (one process, one
    /// shard) can be joined to its shard in Prometheus (`* on(instance) group_left(shard)`).
    public func shard(index: Int, count: Int, slot: String) -> Gauge {
        Gauge(label: "outbox_relay_shard", dimensions: [("shard", String(index)), ("shards", String(count)), ("slot", slot)])
    }
}
