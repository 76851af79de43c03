/// When the sweeper re-sends an INIT row and when it gives up. Pure; the SQL query uses
/// the same numbers (`backoffSeconds`), and the tests check the two agree.
public struct SweeperPolicy: Sendable, Equatable {
    /// How often a sweep runs. The original service: every 20 s.
    public var interval: Duration
    /// Rows younger than this are left to the relay. The original service: 10 s.
    public var minimumAge: Duration
    /// After this many sends without reaching COMPLETE, the row becomes DEAD.
    public var maxAttempts: Int
    /// Wait after the n-th send: base × 2^(n-1), capped.
    public var backoffBase: Duration
    public var backoffCap: Duration
    /// Rows per sweep transaction.
    public var batchSize: Int
    /// Which topics are swept, and how (`sweeper-writeback-topics`, `sweeper-consumer-expiry`).
    public var scope: SweepScope
    /// DEAD rows older than this are deleted; nil keeps them until someone re-drives or
    /// deletes them (`dead-retention`). Longer than `retention`: they wait for a person.
    public var deadRetention: Duration?

    public init(interval: Duration = .seconds(20), minimumAge: Duration = .seconds(10), maxAttempts: Int = 10,
                backoffBase: Duration = .seconds(10), backoffCap: Duration = .seconds(3_600), batchSize: Int = 500,
                scope: SweepScope = SweepScope(), deadRetention: Duration? = .seconds(30 * 86_400)) {
        self.interval = interval; self.minimumAge = minimumAge; self.maxAttempts = maxAttempts
        self.backoffBase = backoffBase; self.backoffCap = backoffCap; self.batchSize = batchSize
        self.scope = scope; self.deadRetention = deadRetention
    }

    public enum Decision: Sendable, Equatable { case resend, deadLetter }

    /// `attempts` is how many times the sweeper already sent the row.
    public func decide(attempts: Int) -> Decision { attempts >= maxAttempts ? .deadLetter : .resend }

    /// Seconds to wait after a row's last sweeper send before the next one.
    public func backoffSeconds(afterAttempts attempts: Int) -> Double {
        let base = backoffBase.inSeconds, cap = backoffCap.inSeconds
        guard attempts > 0 else { return 0 }
        var value = base
        for _ in 1..<min(attempts, 62) {
            value *= 2
            if value >= cap { return cap }
        }
        return min(value, cap)
    }

    public func validate() throws(PolicyError) {
        if interval < .milliseconds(10) { throw PolicyError("sweeper-interval must be at least 10 ms") }
        if minimumAge < .zero { throw PolicyError("sweeper-min-age must not be negative") }
        if maxAttempts < 1 { throw PolicyError("sweeper-max-attempts must be at least 1") }
        if backoffBase <= .zero || backoffCap < backoffBase { throw PolicyError("sweeper backoff: base must be positive and at most the cap") }
        if !(1...10_000).contains(batchSize) { throw PolicyError("sweeper-batch must be between 1 and 10000") }
        if scope.consumerExpiry <= .zero { throw PolicyError("sweeper-consumer-expiry must be positive") }
        if let deadRetention, deadRetention <= .zero { throw PolicyError("dead-retention must be positive (0 in settings keeps DEAD rows)") }
    }
}

public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
