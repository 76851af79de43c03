/// How notify capture sleeps while it waits for the transactions that were in progress when
/// it rang in (`DoorbellPolicy.awaitingWriters`): in slices, checking after each whether they
/// have ended, and at most `limit` in all (the fallback interval, after which it reads anyway).
///
/// PostgreSQL has no SQL call that waits for another transaction without taking a lock on
/// it, so the relay polls their status. The slices start short, since a racing writer is
/// usually a commit away, and double up to `longestSlice`, so that a long unrelated
/// transaction costs a few cheap queries per second at most. A notification ends any slice.
public struct WriterWait: Sendable, Equatable {
    public static let firstSlice = Duration.milliseconds(2)
    public static let longestSlice = Duration.milliseconds(100)

    /// What is left of the limit.
    public private(set) var left: Duration
    private var slice = WriterWait.firstSlice

    public init(limit: Duration) {
        left = limit
    }

    /// How long to sleep before the next check, or nil once the limit is spent.
    public var nextSlice: Duration? {
        left > .zero ? min(slice, left) : nil
    }

    /// A slice from `nextSlice` passed and the transactions are still in progress.
    public mutating func stillRunning(after slept: Duration) {
        left -= slept
        slice = min(slice * 2, Self.longestSlice)
    }
}
