/// Exponential backoff with full jitter and a cap: reconnects to PostgreSQL, dead-letter
/// retries, and the sweeper's per-row resend schedule all use it.
public struct Backoff: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(30), multiplier: Double = 2) {
        precondition(initial > .zero && maximum >= initial && multiplier >= 1, "invalid backoff")
        self.initial = initial; self.maximum = maximum; self.multiplier = multiplier
    }

    /// The ceiling for attempt `n` (0-based): initial × multiplierⁿ, capped at `maximum`.
    public func ceiling(attempt: Int) -> Duration {
        let base = Double(initial.components.seconds) + Double(initial.components.attoseconds) * 1e-18
        let cap = Double(maximum.components.seconds) + Double(maximum.components.attoseconds) * 1e-18
        var value = base
        for _ in 0..<max(0, min(attempt, 64)) {
            value *= multiplier
            if value >= cap { return maximum }
        }
        return .nanoseconds(Int64(min(value, cap) * 1e9))
    }

    /// A delay in [ceiling/2, ceiling]: half-jitter keeps retries spread out without ever
    /// retrying immediately. `random` is a unit-interval sample, injected for tests.
    public func delay(attempt: Int, random: Double) -> Duration {
        let ceiling = ceiling(attempt: attempt)
        let r = min(max(random, 0), 1)
        return ceiling / 2 + ceiling * (r / 2)
    }

    public func delay(attempt: Int) -> Duration { delay(attempt: attempt, random: Double.random(in: 0...1)) }
}
