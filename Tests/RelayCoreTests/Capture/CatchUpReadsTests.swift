import RelayCore
import Testing

/// Batched reads while behind (issue 14: two shard relays on two cores ran at ~0.2× of one,
/// the walsenders and relays ping-ponging a context switch per row, ~300 bytes per read).
/// Each row is a sequence of events from a fresh stream: a burst of a committed transaction
/// with its lag in ms, of a streamed transaction in progress, or of neither (nil: a Stream
/// Stop), with its size; or a wait that brought nothing. The row lists
/// the low-water marks the socket is given (nil: unchanged) and whether reads are batched
/// at the end.
@Suite("Catch-up reads policy")
struct CatchUpReadsTests {
    enum Event { case burst(lagMs: Int?, bytes: Int), streamed(bytes: Int), emptyWait }
    /// Six crumbs (one row each) in a row bring the moving average below 2 KiB.
    static let crumb = Event.burst(lagMs: 400, bytes: 300)
    static let crumbs = Array(repeating: crumb, count: 6)
    static let table: [(events: [Event], marks: [Int?], batching: Bool)] = [
        // Live traffic: changes sent a few ms after their commit are read as they arrive,
        // however small the reads.
        (Array(repeating: .burst(lagMs: 3, bytes: 300), count: 20), Array(repeating: nil, count: 20), false),
        // A backlog the relay keeps pace with reads ~10 KB at a time: left alone.
        (Array(repeating: .burst(lagMs: 900, bytes: 10_000), count: 20), Array(repeating: nil, count: 20), false),
        // A backlog read in crumbs: batch once the average read is small.
        (crumbs, Array(repeating: nil, count: 5) + [32_768], true),
        // Batched reads stay batched while more than 20 ms behind...
        (crumbs + [.burst(lagMs: 21, bytes: 32_768)], Array(repeating: nil, count: 5) + [32_768, nil], true),
        // ...and stop below 20 ms (mark 1: one wake-up per message again).
        (crumbs + [.burst(lagMs: 19, bytes: 32_768)], Array(repeating: nil, count: 5) + [32_768, 1], false),
        // A wait that brought nothing: the stream is not saturated; stop batching at once,
        // so an idle relay does not wake every millisecond.
        (crumbs + [.emptyWait, .emptyWait], Array(repeating: nil, count: 5) + [32_768, 1, nil], false),
        // A burst ending on neither (a Stream Stop) neither starts nor ends batching.
        (Array(repeating: .burst(lagMs: nil, bytes: 300), count: 8) + crumbs + [.burst(lagMs: nil, bytes: 32_768)],
         Array(repeating: nil, count: 8) + [32_768] + Array(repeating: nil, count: 6), true),
        // A streamed transaction in progress counts as behind: crumbs of it are batched...
        (Array(repeating: .streamed(bytes: 300), count: 6), Array(repeating: nil, count: 5) + [32_768], true),
        // ...while big reads of it are left alone...
        (Array(repeating: .streamed(bytes: 10_000), count: 20), Array(repeating: nil, count: 20), false),
        // ...and the first live transaction after it ends batching.
        (Array(repeating: .streamed(bytes: 300), count: 6) + [.streamed(bytes: 32_768), .burst(lagMs: 2, bytes: 300)],
         Array(repeating: nil, count: 5) + [32_768, nil, 1], false),
        // A clock that seems to run backwards (a negative lag) is not behind.
        (crumbs + [.burst(lagMs: -5, bytes: 300)], Array(repeating: nil, count: 5) + [32_768, 1], false),
    ]

    static func apply(_ event: Event, to policy: inout CatchUpReads) -> Int? {
        switch event {
        case .burst(let lag, let bytes): policy.afterBurst(lag.map { .committed(lag: .milliseconds($0)) } ?? .unknown, bytes: bytes)
        case .streamed(let bytes): policy.afterBurst(.inProgress, bytes: bytes)
        case .emptyWait: policy.afterEmptyWait()
        }
    }

    @Test("modes and the low-water marks they set", arguments: table.indices)
    func sequence(_ index: Int) {
        let row = Self.table[index]
        var policy = CatchUpReads(batchBytes: 32_768)
        let marks = row.events.map { Self.apply($0, to: &policy) }
        #expect(marks == row.marks)
        #expect(policy.batching == row.batching)
    }

    @Test("after probeBatches batched reads it reads per message again, and batches again only on fresh evidence")
    func probe() {
        var policy = CatchUpReads(batchBytes: 32_768, probeBatches: 4)
        for event in Self.crumbs { _ = Self.apply(event, to: &policy) }
        #expect(policy.batching)
        let batched = (0..<4).map { _ in policy.afterBurst(.committed(lag: .seconds(1)), bytes: 32_768) }
        #expect(batched == [nil, nil, nil, 1])
        // Big reads now: the relay keeps pace on its own and stays unbatched.
        #expect(policy.afterBurst(.committed(lag: .seconds(1)), bytes: 20_000) == nil)
        #expect(!policy.batching)
        // Crumbs again: batched again.
        let again = Array(repeating: Self.crumb, count: 12).map { Self.apply($0, to: &policy) }
        #expect(again.compactMap { $0 } == [32_768])
    }

    @Test("0 bytes never batches, however far behind")
    func disabled() {
        var policy = CatchUpReads(batchBytes: 0)
        for _ in 0..<20 { #expect(policy.afterBurst(.committed(lag: .seconds(3_600)), bytes: 100) == nil) }
        #expect(!policy.batching)
        #expect(policy.waitTimeout(otherwise: .milliseconds(100)) == .milliseconds(100))
    }

    @Test("a batched wait lasts at most maxWait, so a keepalive or a stop is not held longer")
    func waitBound() {
        var policy = CatchUpReads(batchBytes: 32_768)
        #expect(policy.waitTimeout(otherwise: .milliseconds(100)) == .milliseconds(100))
        for event in Self.crumbs { _ = Self.apply(event, to: &policy) }
        #expect(policy.waitTimeout(otherwise: .milliseconds(100)) == .milliseconds(1))
        #expect(policy.waitTimeout(otherwise: .microseconds(200)) == .microseconds(200))
    }

    @Test("the default batch is the documented 32 KiB")
    func defaults() {
        #expect(CatchUpReads.defaultBatchBytes == 32 << 10)
        #expect(CatchUpReads().batchBytes == 32 << 10)
    }
}
