/// How long notify capture may sleep between reads when its LISTEN is deaf (`ListenProbe`),
/// as behind a transaction pooler with no `notify-listen-url`: no ring ends a sleep there,
/// so the sleep itself is the latency.
///
/// Reads adapt to recent traffic: while rows came within `quietAfter`, the relay reads
/// every `fastInterval`, so a trickle waits tens of milliseconds, not the fallback timer.
/// Once the outbox is quiet, each empty read doubles the sleep up to the fallback interval,
/// so an idle relay costs what it did before: one read per `notify-fallback-interval`.
/// While LISTEN works, rings end the sleep and the limit is the fallback interval.
///
/// A pure state machine over a monotonic clock given as durations since any origin. Used by
/// one capture thread only.
public struct DeafPolling: Sendable, Equatable {
    /// The sleep while traffic is recent: a trickle's p99 commit→ack stays under ~100 ms,
    /// at 25 reads a second through the pooler while rows flow.
    public static let fastInterval = Duration.milliseconds(40)
    /// How long after the last rows the reads stay fast.
    public static let quietAfter = Duration.seconds(2)

    private var lastRows: Duration?
    private var nextQuietSleep = DeafPolling.fastInterval

    public init() {}

    /// A read finished at `now`; `foundRows` says whether it published anything.
    public mutating func read(foundRows: Bool, now: Duration) {
        guard foundRows else { return }
        lastRows = now
        nextQuietSleep = Self.fastInterval
    }

    /// The longest sleep before the next read, starting at `now`.
    public mutating func sleepLimit(deaf: Bool, fallback: Duration, now: Duration) -> Duration {
        guard deaf else { return fallback }
        if let lastRows, now - lastRows < Self.quietAfter { return min(Self.fastInterval, fallback) }
        let limit = min(nextQuietSleep, fallback)
        nextQuietSleep = min(nextQuietSleep * 2, fallback)
        return limit
    }
}
