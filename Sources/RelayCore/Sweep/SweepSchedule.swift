public import PGOutput

/// When the sweeper may re-send or delete, pure. The sweeper is the safety net for rows
/// that stay INIT after the stream published them (a consumer lost or skipped its message);
/// it must never race the stream (docs/architecture.md, invariant 7). A round therefore goes:
///
/// 1. `takeSnapshot`: in one statement, read the candidate rows (INIT on a swept topic,
///    older than `minimumAge`, due by their backoff), the rows past retention, and
///    `pg_current_wal_insert_lsn()`, the watermark. Every row read committed before it.
/// 2. `waitForStream`: wait until the relay has confirmed past the watermark, so the stream
///    has published every row read (a re-send can only be a later duplicate, never a
///    first delivery out of order; a deleted row was published). If the stream does not
///    get there within `snapshotExpiry`, the snapshot is dropped and a new one taken.
/// 3. `deleteExpired`: the rows past retention go.
/// 4. `resendDue`: once the candidates have been published for `grace`, the caller reads
///    the topics' modes (`SweepScope`) and `finishRound(modes:)` says which are due: all
///    of an age-swept topic, and of a progress-swept topic those whose consumers have read
///    past the time the stream had published them. The caller claims those still INIT and
///    re-sends them.
///
/// The time a candidate was published by is the wall time at which the relay was first
/// seen confirmed past a snapshot that held it, and it is kept across rounds while the row
/// stays a candidate: a consumer that is behind reaches it eventually, however far behind
/// it runs. A re-send forgets it, so the next re-send waits until the consumers have read
/// past the re-sent message too.
///
/// Only an active relay that is streaming sweeps: anything else drops the round.
public struct SweepSchedule: Sendable {
    public struct Snapshot: Sendable, Equatable {
        /// Candidates to re-send, with their topics.
        public var candidates: [Int64: String]
        /// Rows past retention, deleted once the stream has confirmed past `watermark`.
        public var expired: [Int64]
        public var watermark: LSN
        public var takenAt: ContinuousClock.Instant
        /// When the relay was first seen confirmed at or past `watermark`.
        public var publishedBy: ContinuousClock.Instant?
        public init(candidates: [Int64: String], expired: [Int64] = [], watermark: LSN, takenAt: ContinuousClock.Instant,
                    publishedBy: ContinuousClock.Instant? = nil) {
            self.candidates = candidates; self.expired = expired; self.watermark = watermark
            self.takenAt = takenAt; self.publishedBy = publishedBy
        }
    }

    public enum Step: Sendable, Equatable {
        /// Nothing to do now (not streaming, or waiting out the grace period).
        case idle
        case takeSnapshot
        /// Waiting for the relay to confirm past the snapshot's watermark.
        case waitForStream(LSN)
        /// Delete these rows (the delete re-checks they are still past retention).
        case deleteExpired([Int64])
        /// Read the topics' modes and call `finishRound(modes:)`.
        case resendDue

        /// Whether carrying the step out queries the database (a success then shows the
        /// connection works).
        public var usesDatabase: Bool {
            switch self {
            case .idle, .waitForStream: false
            case .takeSnapshot, .deleteExpired, .resendDue: true
            }
        }
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
    /// Candidate → wall time (seconds since 1970) by which the stream had published it.
    public private(set) var publishedBy: [Int64: Double] = [:]

    public init(interval: Duration, grace: Duration, snapshotExpiry: Duration) {
        self.interval = interval
        self.grace = grace
        self.snapshotExpiry = snapshotExpiry
    }

    /// What to do now, given whether this relay is the active, streaming one and the LSN
    /// it has confirmed (every transaction committed at or below it is acknowledged).
    /// `wallNow` is seconds since 1970 on the clock that stamps the relay's records.
    public mutating func next(now: ContinuousClock.Instant, wallNow: Double, streaming: Bool, confirmed: LSN) -> Step {
        guard streaming else {
            snapshot = nil  // a standby or a reconnecting relay never sends
            publishedBy = [:]
            return .idle
        }
        guard var current = snapshot else {
            if let lastSnapshotAt, now - lastSnapshotAt < interval { return .idle }
            return .takeSnapshot
        }
        if current.candidates.isEmpty && current.expired.isEmpty {
            snapshot = nil  // nothing stuck: wait for the next interval
            publishedBy = [:]
            return .idle
        }
        if current.publishedBy == nil {
            if confirmed >= current.watermark {
                current.publishedBy = now
                // Kept for rows still candidates, stamped now for new ones, forgotten for
                // rows that left (completed, deleted, or not due by their backoff).
                publishedBy = Dictionary(uniqueKeysWithValues: current.candidates.keys.map { ($0, publishedBy[$0] ?? wallNow) })
                snapshot = current
            } else if now - current.takenAt >= snapshotExpiry {
                snapshot = nil  // the stream is stuck (broker down): nothing is sent
                return .takeSnapshot
            } else {
                return .waitForStream(current.watermark)
            }
        }
        if !current.expired.isEmpty {
            let expired = current.expired
            current.expired = []
            snapshot = current
            return .deleteExpired(expired)
        }
        if current.candidates.isEmpty {
            snapshot = nil
            return .idle
        }
        guard let published = current.publishedBy, now - published >= grace else { return .idle }
        return .resendDue
    }

    /// The snapshot query returned these candidates and rows past retention (maybe none)
    /// and the watermark. `more`: a list was cut at its limit, so the next snapshot is
    /// taken as soon as this round ends rather than an interval later (retention keeps up
    /// with a steady load).
    public mutating func tookSnapshot(candidates: [Int64: String], expired: [Int64] = [], watermark: LSN,
                                      at now: ContinuousClock.Instant, more: Bool = false) {
        snapshot = Snapshot(candidates: candidates, expired: expired, watermark: watermark, takenAt: now)
        lastSnapshotAt = more ? nil : now
    }

    /// Ends a round at `resendDue`: the candidates due under `modes` (ascending), which the
    /// caller claims and re-sends. Their published-by times are forgotten: a re-sent row
    /// is due again only after its consumers read past the re-sent message.
    public mutating func finishRound(modes: [String: SweepScope.Mode]) -> [Int64] {
        defer { snapshot = nil }
        guard let current = snapshot else { return [] }
        var due: [Int64] = []
        for (id, topic) in current.candidates {
            guard let published = publishedBy[id] else { continue }
            if SweepScope.isDue(SweepScope.mode(of: topic, in: modes), publishedBy: published) { due.append(id) }
        }
        for id in due { publishedBy[id] = nil }
        return due.sorted()
    }

    /// The round failed: the next one starts with a new snapshot.
    public mutating func finishedRound() {
        snapshot = nil
    }
}
