public import PGOutput

/// When the sweeper may re-send, pure. The sweeper is the safety net for rows that stay
/// INIT after the stream published them (a consumer lost or skipped its message); it must
/// never race the stream (docs/architecture.md, invariant 7). A round therefore goes:
///
/// 1. `takeSnapshot`: in one statement, read the candidate rows (INIT, older than
///    `minimumAge`, due by their backoff) and `pg_current_wal_insert_lsn()`, the watermark.
///    Every candidate committed before that LSN.
/// 2. `waitForStream`: wait until the relay has confirmed past the watermark, so the stream
///    has published every candidate (a re-send can only be a later duplicate, never a
///    first delivery out of order). If the stream does not get there within
///    `snapshotExpiry`, the snapshot is dropped and a new one taken.
/// 3. `resend`: once the candidates have been published for `grace` (consumers had that
///    long to complete them), claim those still INIT and re-send them.
///
/// Only an active relay that is streaming sweeps: anything else drops the round.
public struct SweepSchedule: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var ids: [Int64]
        public var watermark: LSN
        public var takenAt: ContinuousClock.Instant
        /// When the relay was first seen confirmed at or past `watermark`.
        public var publishedBy: ContinuousClock.Instant?
        public init(ids: [Int64], watermark: LSN, takenAt: ContinuousClock.Instant, publishedBy: ContinuousClock.Instant? = nil) {
            self.ids = ids; self.watermark = watermark; self.takenAt = takenAt; self.publishedBy = publishedBy
        }
    }

    public enum Step: Sendable, Equatable {
        /// Nothing to do now (not streaming, or waiting out the grace period).
        case idle
        case takeSnapshot
        /// Waiting for the relay to confirm past the snapshot's watermark.
        case waitForStream(LSN)
        /// Claim these rows (the claim re-checks they are still INIT and due) and re-send.
        case resend([Int64])
    }

    /// How often a snapshot is taken (the sweeper's interval).
    public let interval: Duration
    /// How long candidates stay INIT after the stream published them before a re-send.
    public let grace: Duration
    /// How long a snapshot waits for the stream before it is dropped.
    public let snapshotExpiry: Duration
    public private(set) var snapshot: Snapshot?
    /// When the last snapshot was taken: the next one waits for `interval` after it.
    public private(set) var lastSnapshotAt: ContinuousClock.Instant?

    public init(interval: Duration, grace: Duration, snapshotExpiry: Duration) {
        self.interval = interval
        self.grace = grace
        self.snapshotExpiry = snapshotExpiry
    }

    /// What to do now, given whether this relay is the active, streaming one and the LSN
    /// it has confirmed (every transaction committed at or below it is acknowledged).
    public mutating func next(now: ContinuousClock.Instant, streaming: Bool, confirmed: LSN) -> Step {
        guard streaming else {
            snapshot = nil  // a standby or a reconnecting relay never sends
            return .idle
        }
        guard var current = snapshot else {
            if let lastSnapshotAt, now - lastSnapshotAt < interval { return .idle }
            return .takeSnapshot
        }
        if current.ids.isEmpty {
            snapshot = nil  // nothing stuck: wait for the next interval
            return .idle
        }
        if current.publishedBy == nil {
            if confirmed >= current.watermark {
                current.publishedBy = now
                snapshot = current
            } else if now - current.takenAt >= snapshotExpiry {
                snapshot = nil  // the stream is stuck (broker down): nothing is sent
                return .takeSnapshot
            } else {
                return .waitForStream(current.watermark)
            }
        }
        guard let publishedBy = current.publishedBy, now - publishedBy >= grace else { return .idle }
        return .resend(current.ids)
    }

    /// The snapshot query returned `ids` (maybe none) and the watermark.
    public mutating func tookSnapshot(ids: [Int64], watermark: LSN, at now: ContinuousClock.Instant) {
        snapshot = Snapshot(ids: ids, watermark: watermark, takenAt: now)
        lastSnapshotAt = now
    }

    /// The re-send step finished (or failed): the next round starts with a new snapshot.
    public mutating func finishedRound() {
        snapshot = nil
    }
}
