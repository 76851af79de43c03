/// Where an operator's re-publishing run (`redrive`, `replay`) stands: the last outbox id
/// done, how many rows it has taken, and how large the next batch may be. Pure.
///
/// The run reads its selection in `outbox_id` order, one batch at a time, and moves the
/// cursor only past rows that are settled (published, or refused for a reason of their
/// own). So `afterID` is always a safe place to resume: `--after-id <afterID>` continues
/// exactly where a run stopped, and nothing before it is taken again.
public struct RepublishCursor: Sendable, Equatable {
    /// Every row up to and including this id is done (or was not selected).
    public private(set) var afterID: Int64
    /// Rows settled so far in this run.
    public private(set) var done = 0
    /// At most this many rows in this run; nil: no bound but the selection.
    public let limit: Int?
    public let batchSize: Int

    public static let defaultBatchSize = 500
    /// `--limit`'s default: a run that forgot to bound itself stops here, and prints how to go on.
    public static let defaultLimit = 10_000

    public init(afterID: Int64 = 0, limit: Int? = RepublishCursor.defaultLimit, batchSize: Int = RepublishCursor.defaultBatchSize) throws(SelectionError) {
        guard afterID >= 0 else { throw SelectionError("--after-id \(afterID) is negative", fix: "give the last id a run printed, or leave it out to start at the beginning") }
        if let limit, limit < 1 { throw SelectionError("--limit \(limit) is below 1", fix: "give how many rows this run may take at most, e.g. --limit 10000") }
        guard (1...10_000).contains(batchSize) else {
            throw SelectionError("--batch-size \(batchSize) is out of range", fix: "use 1 to 10000 (default \(Self.defaultBatchSize))")
        }
        self.afterID = afterID
        self.limit = limit
        self.batchSize = batchSize
    }

    /// The next batch's size, or nil when the limit is reached.
    public var nextBatchSize: Int? {
        guard let limit else { return batchSize }
        let left = limit - done
        return left > 0 ? min(batchSize, left) : nil
    }

    /// Records a settled batch: `rows` rows done, the last of them `lastID`.
    public mutating func advance(to lastID: Int64, rows: Int) {
        precondition(lastID >= afterID, "the cursor only moves forward")
        afterID = lastID
        done += rows
    }
}

/// How one row of a batch fared on its way to Kafka, as the I/O layer classifies it.
public enum RowSendOutcome: Sendable, Equatable {
    /// Delivered (acknowledged by the brokers).
    case sent
    /// Can never be published as it is (the route refuses its topic, or the record is too
    /// large): the row stays as it was and the run goes on. The reason code is reported.
    case refused(String)
    /// Did not reach Kafka for a reason that is not the row's (broker down, ACL, timeout):
    /// the run stops here, to be resumed after the fix.
    case failed(String)
}

/// What a batch's outcomes mean for the run. Pure.
///
/// Per-key order: the batch was sent in `outbox_id` order and waited for as a whole. When a
/// row failed, the rows after it may have reached Kafka, but they are not counted as done:
/// the resumed run sends them again after the failed row, so each key's rows arrive, at
/// least once, in `outbox_id` order (a consumer sees a duplicate, which it absorbs).
public struct BatchSettlement: Sendable, Equatable {
    /// Delivered rows that count as done, in id order (redrive flips exactly these).
    public var published: [Int64] = []
    /// Rows refused for their own reason, by reason code.
    public var refused: [String: [Int64]] = [:]
    /// Where the cursor may move: the last id settled, or the previous cursor.
    public var resumeAfter: Int64
    /// Rows settled in this batch (published and refused).
    public var settled = 0
    /// The first failure that stopped the run, if any.
    public var failure: String?

    /// `rows` in id order with their outcomes; `previous` is the cursor before the batch.
    public static func settle(previous: Int64, rows: [(id: Int64, outcome: RowSendOutcome)]) -> BatchSettlement {
        var settlement = BatchSettlement(resumeAfter: previous)
        for (id, outcome) in rows {
            switch outcome {
            case .sent: settlement.published.append(id)
            case .refused(let reason): settlement.refused[reason, default: []].append(id)
            case .failed(let error):
                settlement.failure = error
                return settlement
            }
            settlement.resumeAfter = id
            settlement.settled += 1
        }
        return settlement
    }

    /// Whether a batch must wait for the relay's stream before it is sent. A row still INIT
    /// may not have been published by the stream yet: sending it first would be its first
    /// delivery, possibly ahead of an earlier row of its key that the stream has not reached
    /// (invariant 2). Rows in any other status have been through the stream (a consumer or
    /// the dead-letter path moved them on), so a new copy is only a later duplicate.
    public static func mustWaitForStream(statuses: [String]) -> Bool {
        statuses.contains("INIT")
    }
}
