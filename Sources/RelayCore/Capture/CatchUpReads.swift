/// When stream capture asks the kernel to wake it only for a batch of WAL data.
///
/// The walsender sends every change with its own send(). While the relay keeps pace, each
/// send wakes the capture thread for one row; that costs little on an idle host, but where
/// the walsender, the relay and the broker share the CPU it turns into a ping-pong: the
/// woken relay preempts the walsender after every row, both pay a context switch per row,
/// and the pipe runs at a fraction of its speed. Two shard relays on two cores drained a
/// backlog at ~0.2× of one relay that way, with each read carrying ~300 bytes (one row).
///
/// So while the relay is behind and its reads come in crumbs, it reads in batches: the
/// socket's receive low-water mark (SO_RCVLOWAT) is raised to `batchBytes`, and the kernel
/// wakes the reader only once that much has arrived, or after `maxWait`.
/// - *Behind* is measured on the server's clock alone (no clock skew): a message's send
///   time minus the commit time of its transaction. A change committed more than
///   `enterLag` ago is backlog, and waiting up to `maxWait` for more of it adds at most that
///   to rows that already waited `enterLag`. A streamed transaction still in progress is
///   bulk by nature and counts as behind (`Sent.inProgress`).
/// - *Crumbs*: the average read (a moving average, weight 1/8) is below `smallRead`.
///   A relay that keeps pace on its own reads ~10 KB at a time and is left alone: it has
///   nothing to gain, and in A/B runs batching it looked a few percent slower (within the
///   host's noise, but never faster).
/// - The relay reads per message again once the lag falls below `exitLag`, or a wait
///   brought nothing (the stream is not saturated), so live traffic keeps its latency; and
///   after `probeBatches` batched reads, to see whether the crumbs are still there.
///
/// A pure state machine: the capture loop reports each burst read and each empty wait, and
/// applies the low-water mark it is given. Used by one capture thread only.
public struct CatchUpReads: Sendable, Equatable {
    /// Bytes to wait for while behind; 0 never batches (`catch-up-read-size`).
    public let batchBytes: Int
    /// A change sent this long after its commit is backlog: batching may start.
    public let enterLag: Duration
    /// Below this lag batching ends (lower than `enterLag`, so the state does not flap).
    public let exitLag: Duration
    /// The longest a batched wait lasts: also bounds a keepalive's reply and a stop.
    public let maxWait: Duration
    /// Reads averaging fewer bytes than this are crumbs: one row per wake-up. A relay that
    /// keeps pace on its own reads ~10 KB at a time.
    public let smallRead: Int
    /// Batched reads before batching ends to measure the unbatched reads again: while
    /// batching, the reads are large by construction and say nothing about the crumbs.
    public let probeBatches: Int
    /// True while reads are batched.
    public private(set) var batching = false
    /// Moving average of the bytes per read while not batching (starts at twice `smallRead`:
    /// no evidence yet).
    private var averageRead: Int
    private var batchesLeft = 0

    public static let defaultBatchBytes = 32 << 10

    public init(batchBytes: Int = Self.defaultBatchBytes, enterLag: Duration = .milliseconds(50),
                exitLag: Duration = .milliseconds(20), maxWait: Duration = .milliseconds(1),
                smallRead: Int = 2_048, probeBatches: Int = 256) {
        precondition(exitLag <= enterLag, "exitLag above enterLag would toggle on every burst")
        self.batchBytes = batchBytes
        self.enterLag = enterLag
        self.exitLag = exitLag
        self.maxWait = maxWait
        self.smallRead = smallRead
        self.probeBatches = probeBatches
        averageRead = Self.fresh(smallRead)
    }

    /// The receive low-water mark to apply now, or nil when it stays as it is.
    public typealias LowWater = Int?

    /// What a burst's last message was.
    public enum Sent: Sendable, Equatable {
        /// A change of a committed transaction, sent `lag` after its commit: the server's
        /// send time minus the transaction's commit time, both from the server's clock.
        case committed(lag: Duration)
        /// A change of a transaction still in progress, streamed because it outgrew the
        /// server's `logical_decoding_work_mem`: bulk by nature, and nothing of it is
        /// published before its commit, so it counts as behind. Batching it cut the relay's
        /// CPU in a 500k-row transaction's streaming phase from ~10.5 to ~3.8 µs per row.
        case inProgress
        /// Neither (a Stream Stop, or nothing yet): keeps the mode.
        case unknown
    }

    /// A burst of `bytes` was read and handled; `sent` is its last message.
    public mutating func afterBurst(_ sent: Sent, bytes: Int) -> LowWater {
        guard batchBytes > 0 else { return nil }
        let behind: (enter: Bool, stay: Bool)?
        switch sent {
        case .committed(let lag): behind = (lag >= enterLag, lag >= exitLag)
        case .inProgress: behind = (true, true)
        case .unknown: behind = nil
        }
        if batching {
            batchesLeft -= 1
            return set(batching: (behind?.stay ?? true) && batchesLeft > 0)
        }
        averageRead += (bytes - averageRead) / 8
        guard let behind else { return nil }
        return set(batching: behind.enter && averageRead < smallRead)
    }

    /// A wait ended without a complete message.
    public mutating func afterEmptyWait() -> LowWater {
        set(batching: false)
    }

    /// How long the next wait for the socket may last, given the wait used otherwise.
    public func waitTimeout(otherwise: Duration) -> Duration {
        batching ? min(maxWait, otherwise) : otherwise
    }

    private static func fresh(_ smallRead: Int) -> Int { min(smallRead, Int.max / 2) * 2 }

    private mutating func set(batching: Bool) -> LowWater {
        guard batching != self.batching else { return nil }
        self.batching = batching
        if batching {
            batchesLeft = probeBatches
        } else {
            averageRead = Self.fresh(smallRead)  // evidence is gathered afresh: ~6 crumbs in a row
        }
        return batching ? batchBytes : 1
    }
}
