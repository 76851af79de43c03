/// How long a capture may wait for the slot record before it confirms (invariant 8: the
/// record goes first). Waiting is what keeps re-sends low, but a stop has a budget: once
/// one is requested, no wait runs into the last half of the stop's teardown reserve, which
/// belongs to closing the producer and the connections. What is not recorded by then is
/// not confirmed, and the next start publishes it again, as after a crash.
///
/// Evaluated again on every wake-up of the wait, so a stop requested while a capture is
/// already waiting cuts that wait short too.
public struct RecordWait: Sendable, Equatable {
    /// When the wait began.
    public var started: ContinuousClock.Instant
    /// The longest the capture waits when no stop is requested.
    public var longest: Duration
    /// `RelayConfiguration.stopTeardownReserve`.
    public var teardownReserve: Duration

    public init(started: ContinuousClock.Instant, longest: Duration, teardownReserve: Duration) {
        self.started = started
        self.longest = longest
        self.teardownReserve = teardownReserve
    }

    /// When to give up, given the stop deadline as it is now (nil: no stop requested).
    public func deadline(stopDeadline: ContinuousClock.Instant?) -> ContinuousClock.Instant {
        let own = started + longest
        guard let stopDeadline else { return own }
        return min(own, stopDeadline + teardownReserve / 2)
    }
}
