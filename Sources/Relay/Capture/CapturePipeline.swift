import Logging
import PGOutput
import RelayCore

/// The part of capture both modes share: pgoutput message → decoder → outbox row →
/// publisher, with transaction boundaries fed to the delivery line. A mode owns only its
/// transport (how messages arrive) and its acknowledgement (how the slot moves).
///
/// Non-streamed transactions are published as their Inserts arrive and closed at Commit.
/// Streamed (in-progress, protocol v2) transactions are buffered under a memory bound,
/// spilled beyond it, published at Stream Commit and dropped at Stream Abort (invariant 4).
/// Used by one capture thread only.
final class CapturePipeline {
    private let publisher: Publisher
    private let logger: Logger
    private let metrics: RelayMetrics
    private let buffer: StreamedTransactionBuffer?
    private var decoder = PGOutputDecoder()
    private var extractor: OutboxRowExtractor
    private var streamXid: UInt32 = 0
    /// The commit LSN of the transaction being published (Begin's final LSN, or Stream
    /// Commit's), for the `outbox-lsn` header.
    private var commitLSN = LSN.invalid
    /// Between Begin (or Stream Commit) and Commit: a stop waits for the boundary.
    private(set) var insideTransaction = false
    /// The commit timestamp (PostgreSQL epoch, µs) of the transaction whose messages arrive
    /// now: Begin's, or the last one's between transactions. nil before the first Begin and
    /// inside a streamed block, whose transaction has not committed yet.
    private(set) var commitTime: Int64?
    /// Between Stream Start and Stream Stop: changes of a transaction still in progress.
    var inStreamedBlock: Bool { decoder.inStreamBlock }
    /// What PostgreSQL sends again that was acknowledged already (invariant 10), decided
    /// at Begin and at Stream Commit by the commit LSN.
    private var horizon: AcknowledgedHorizon
    /// Inside a transaction below the horizon: its rows are not published.
    private var skipping = false

    /// `buffer` is needed for protocol v2 streaming (stream mode); notify mode reads
    /// committed changes only and passes nil.
    init(publisher: Publisher, logger: Logger, metrics: RelayMetrics, buffer: StreamedTransactionBuffer?,
         tables: [OutboxTable], horizon: AcknowledgedHorizon = AcknowledgedHorizon(lsn: .invalid)) {
        self.extractor = OutboxRowExtractor(tables: tables)
        self.publisher = publisher
        self.logger = logger
        self.metrics = metrics
        self.buffer = buffer
        self.horizon = horizon
    }

    /// Handles one pgoutput message. `whileBlocked` runs while the window is full.
    func handle(_ bytes: UnsafeRawBufferPointer, whileBlocked: () throws -> Void) throws {
        switch try decoder.decode(bytes) {
        case .begin(let begin):
            publisher.beginTransaction(commitTime: begin.commitTime)
            commitTime = begin.commitTime
            commitLSN = begin.finalLSN
            insideTransaction = true
            skipping = acknowledgedAlready(commitLSN: begin.finalLSN)
        case .insert(let relationID, let xid):
            let relation = try relation(relationID)
            guard extractor.table(of: relation) != nil else { return }
            if decoder.inStreamBlock {
                guard let buffer else { throw PGOutputError(.outOfOrder, "a streamed Insert outside stream mode") }
                try buffer.append(xid: streamXid, subxid: xid ?? streamXid, message: bytes)
                return
            }
            if skipping { return }
            try publishInsert(relation: relation, bytes: bytes, whileBlocked: whileBlocked)
        case .commit(let commit):
            if !skipping { metrics.recordSinceCommit(commit.commitTime, on: metrics.commitToCapture) }
            // A skipped transaction closes as an empty one: the confirmation moves past it.
            publisher.commitTransaction(endLSN: commit.endLSN)
            insideTransaction = false
            skipping = false
        case .streamStart(let xid, _):
            streamXid = xid
            commitTime = nil
        case .streamCommit(let xid, let commit):
            guard let buffer else { throw PGOutputError(.outOfOrder, "Stream Commit outside stream mode") }
            if acknowledgedAlready(commitLSN: commit.commitLSN) {
                try buffer.abort(xid: xid, subxid: xid)  // drop its buffered and spilled changes
                publisher.beginTransaction(commitTime: commit.commitTime)
                publisher.commitTransaction(endLSN: commit.endLSN)
                return
            }
            metrics.recordSinceCommit(commit.commitTime, on: metrics.commitToCapture)
            publisher.beginTransaction(commitTime: commit.commitTime)
            self.commitTime = commit.commitTime
            commitLSN = commit.commitLSN
            insideTransaction = true
            let spilledBefore = buffer.bytesSpilled
            try buffer.commit(xid: xid) { message in
                guard case .insert(let relationID, _) = try decoder.decode(message, streamed: true) else { return }
                try publishInsert(relation: try relation(relationID), bytes: message, whileBlocked: whileBlocked)
            }
            if buffer.bytesSpilled > spilledBefore { metrics.spilledBytes.increment(by: buffer.bytesSpilled - spilledBefore) }
            publisher.commitTransaction(endLSN: commit.endLSN)
            insideTransaction = false
        case .streamAbort(let xid, let subxid):
            try buffer?.abort(xid: xid, subxid: subxid)
        case .relation, .update, .delete, .truncate, .type, .origin, .logicalMessage, .streamStop:
            break  // the publication sends inserts only; the rest needs no action
        }
    }

    /// Whether the transaction committing at `commitLSN` was acknowledged already; counts
    /// the skipped ones and reports a replay once, when the first one after it is published.
    private func acknowledgedAlready(commitLSN: LSN) -> Bool {
        switch horizon.decide(commitLSN: commitLSN) {
        case .skip:
            metrics.replayedTransactionsSkipped.increment()
            return true
        case .publishAfterSkipping(let skipped):
            logger.notice("skipped the transactions PostgreSQL sent again that were already acknowledged",
                          metadata: ["skipped": "\(skipped)", "acknowledged": "\(horizon.lsn)"])
            return false
        case .publish:
            return false
        }
    }

    private func relation(_ id: UInt32) throws -> Relation {
        guard let relation = decoder.relations[id] else {
            throw PGOutputError(.unknownRelation, "Insert for relation \(id) before its Relation message")
        }
        return relation
    }

    private func publishInsert(relation: Relation, bytes: UnsafeRawBufferPointer, whileBlocked: () throws -> Void) throws {
        let row: OutboxRowView
        do {
            row = try extractor.view(relation: relation, tuple: decoder.newTuple, bytes: bytes)
        } catch {
            logger.error("malformed outbox row; dead-lettering it", metadata: ["error": "\(error)"])
            try publisher.publishMalformed(error, whileBlocked: whileBlocked)
            return
        }
        try publisher.publish(row, commitLSN: commitLSN, whileBlocked: whileBlocked)
    }
}
