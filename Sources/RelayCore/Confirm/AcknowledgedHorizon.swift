public import PGOutput

/// What PostgreSQL sends again that was already acknowledged (ARCHITECTURE invariant 10).
/// After a crash the slot falls back to the position it last saved to disk, and after a
/// reconnect to what was confirmed last; either way it re-sends transactions that reached
/// Kafka already. The horizon is the furthest position known to be acknowledged, and a
/// transaction PostgreSQL sends again below it is skipped instead of published. Pure: the
/// shell reads the slot, the record and the server's WAL history, and feeds transactions.
///
/// The rule is PostgreSQL's own for a confirmed position (`SnapBuildXactNeedsSkip`): a
/// transaction is skipped when its commit record *starts* below the horizon. That is the
/// commit LSN (Begin's final LSN, Commit's and Stream Commit's commit LSN), which is known
/// at Begin, before any change arrives. Positions the relay confirms are end LSNs (the end
/// of a commit record) or record boundaries, so "commit LSN below" is the same as "end LSN
/// at or below": the transaction that ends exactly at the horizon is skipped, and the next
/// one, whose commit record may begin exactly there (commit LSN == horizon), is published.
/// Skipping at "commit LSN at or below" would lose that one.
public struct AcknowledgedHorizon: Sendable, Equatable {
    /// The WAL history a position belongs to. The same LSN on another timeline (a promoted
    /// standby, a restore) may hold other transactions, so what this process acknowledged
    /// on one history never skips anything on another.
    public struct WALHistory: Sendable, Equatable {
        public var systemIdentifier: String
        public var timeline: UInt32
        public init(systemIdentifier: String, timeline: UInt32) {
            self.systemIdentifier = systemIdentifier; self.timeline = timeline
        }
    }

    /// What this process's delivery line acknowledged in an earlier session, and where.
    public struct InProcess: Sendable, Equatable {
        public var acknowledged: LSN
        /// nil when it could not be read: the acknowledgement then counts for nothing.
        public var history: WALHistory?
        public init(acknowledged: LSN, history: WALHistory?) {
            self.acknowledged = acknowledged; self.history = history
        }

        /// With what the delivery line acknowledged since, on the same history. The line
        /// may hold less: a session that failed right after resetting it (the server still
        /// recovering, say) left it at the slot's fallen-back position.
        public func raised(byLine line: LSN) -> InProcess {
            InProcess(acknowledged: max(acknowledged, line), history: history)
        }
    }

    public enum Decision: Sendable, Equatable {
        /// Acknowledged already: feed it to the delivery line as an empty transaction (so
        /// the confirmation moves past it), publish none of its rows.
        case skip
        /// Not acknowledged: publish it.
        case publish
        /// The first transaction above the horizon after `skipped` were skipped: publish it
        /// (the shell reports the replay once, here).
        case publishAfterSkipping(skipped: Int)
    }

    /// Every transaction whose commit record starts below this was acknowledged.
    public let lsn: LSN
    /// Transactions skipped so far in this session.
    public private(set) var skipped = 0
    private var passed = false

    public init(lsn: LSN) { self.lsn = lsn }

    /// A session's horizon: the highest of the slot's confirmed position (PostgreSQL skips
    /// below it anyway), the slot record's (`outbox_relay_slot`, written only for
    /// acknowledged positions and before they are confirmed), and what this process
    /// acknowledged in an earlier session on the same WAL history as now.
    ///
    /// The record needs no history check: it is a row in the same database, so its value
    /// travels with the WAL it describes (a promoted standby or a restore has the record
    /// as of its own WAL). The in-process position lives only in memory and does not.
    public init(slot: LSN, recorded: LSN?, inProcess: InProcess?, history: WALHistory?) {
        var lsn = max(slot, recorded ?? .invalid)
        if let inProcess, let then = inProcess.history, then == history {
            lsn = max(lsn, inProcess.acknowledged)
        }
        self.init(lsn: lsn)
    }

    /// What the process knows was acknowledged once a session with this horizon began on
    /// `history`: carried to the next session, raised there by what the line acknowledged.
    public func known(on history: WALHistory?) -> InProcess {
        InProcess(acknowledged: lsn, history: history)
    }

    /// Whether a transaction whose commit record starts at `commitLSN` was acknowledged.
    public func skips(commitLSN: LSN) -> Bool { commitLSN < lsn }

    /// Decides for the next transaction in commit order and counts the skipped ones.
    public mutating func decide(commitLSN: LSN) -> Decision {
        if skips(commitLSN: commitLSN) {
            skipped += 1
            return .skip
        }
        if passed || skipped == 0 {
            passed = true
            return .publish
        }
        passed = true
        return .publishAfterSkipping(skipped: skipped)
    }
}
