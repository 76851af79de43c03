import Metrics
import RelayCore

extension RelayMetrics {
    static let sweepModes: [SweepScope.Mode] = [.publishOnly, .sweptByAge, .sweptByProgress(readBefore: nil)]

    /// `outbox_relay_sweeper_topic_mode{topic="BOOK_SAVE",mode="swept_by_progress"} 1`: how
    /// the sweeper treats each topic it knows of (declared or registered); the topic's other
    /// modes read 0. A topic with no series is publish-only.
    func recordTopicMode(topic: String, mode: SweepScope.Mode) {
        for candidate in Self.sweepModes {
            Gauge(label: "outbox_relay_sweeper_topic_mode", dimensions: slot + [("topic", topic), ("mode", candidate.name)])
                .record(candidate.name == mode.name ? 1 : 0)
        }
    }
}
