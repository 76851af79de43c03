public import PGOutput

/// Decides which flush LSN the relay may confirm to PostgreSQL (docs/architecture.md, invariant 3):
/// the end LSN of the last transaction in the longest commit-ordered prefix of
/// transactions that are closed (Commit seen) and whose every event has a successful
/// delivery report. Idle, with nothing open or unacknowledged, it may follow the server's
/// keepalive WAL end so a quiet outbox does not pin WAL.
///
/// Events get consecutive tokens (used as librdkafka message opaques), so finding an
/// event's transaction is a binary search over a ring of transaction records; there is
/// no per-event allocation.
///
/// An empty transaction (one that carries no outbox event) takes no tokens, so it shares
/// its first token with the next transaction: nothing is keyed by the first token, each
/// record owns its acknowledgement bitmap. An empty transaction that commits behind a
/// live record is folded into that record (its end LSN becomes the record's), so a stuck
/// head followed by endless empty transactions costs O(1) memory.
public struct LSNTracker: Sendable {
    public typealias Token = UInt64

    struct Txn: Sendable {
        var firstToken: Token
        var events: Int
        var acked: Int
        var endLSN: LSN?
        var commitTime: Int64
        /// One bit per event, set by its acknowledgement; grown lazily by the first ack
        /// (empty transactions never allocate).
        var ackBits: [UInt64] = []
    }

    private var txns: [Txn] = []
    private var head = 0  // index of the oldest live record in `txns`
    private var nextToken: Token = 1
    public private(set) var confirmableLSN: LSN
    public private(set) var inFlightEvents = 0
    /// Acknowledgements for tokens that were unknown or already acknowledged.
    public private(set) var ignoredAcks = 0

    public init(confirmed: LSN = .invalid) { confirmableLSN = confirmed }

    public var openTransactions: Int { txns.count - head }
    public var isIdle: Bool { openTransactions == 0 && inFlightEvents == 0 }

    /// Begin: a transaction whose commit record is at `commitLSN` starts.
    public mutating func beginTransaction(commitTime: Int64 = 0) {
        txns.append(Txn(firstToken: nextToken, events: 0, acked: 0, endLSN: nil, commitTime: commitTime))
    }

    /// An event of the open transaction is about to be published; returns its token.
    public mutating func registerEvent() -> Token {
        precondition(txns.count > head && txns[txns.count - 1].endLSN == nil, "registerEvent outside a transaction")
        txns[txns.count - 1].events += 1
        inFlightEvents += 1
        let token = nextToken
        nextToken += 1
        return token
    }

    /// Commit: the open transaction ends at `endLSN`; no more events follow.
    @discardableResult
    public mutating func commitTransaction(endLSN: LSN) -> Bool {
        let last = txns.count - 1
        precondition(last >= head && txns[last].endLSN == nil, "commitTransaction without beginTransaction")
        if txns[last].events == 0, last > head, let previousEnd = txns[last - 1].endLSN {
            // An empty transaction behind a live (committed, not yet confirmable) record:
            // its end becomes that record's end. Confirming the later end needs the earlier
            // record done anyway, so invariant 3 holds, and the record count stays flat.
            txns[last - 1].endLSN = max(previousEnd, endLSN)
            txns.removeLast()
            return advance()
        }
        txns[last].endLSN = endLSN
        return advance()
    }

    /// A successful delivery report (or a completed dead-lettering) for `token`.
    /// Returns true when the confirmable LSN moved.
    @discardableResult
    public mutating func acknowledge(_ token: Token) -> Bool {
        guard let index = transactionIndex(of: token) else {
            ignoredAcks += 1
            return false
        }
        guard markAcked(index: index, slot: Int(token - txns[index].firstToken)) else {
            ignoredAcks += 1
            return false
        }
        txns[index].acked += 1
        inFlightEvents -= 1
        return index == head ? advance() : false
    }

    /// A keepalive said the server's WAL ends at `walEnd`. Only when idle may the
    /// confirmable LSN follow it, and never backwards.
    @discardableResult
    public mutating func observeServerWALEnd(_ walEnd: LSN) -> Bool {
        guard isIdle, walEnd > confirmableLSN else { return false }
        confirmableLSN = walEnd
        return true
    }

    /// Commit time (PostgreSQL epoch µs) of the transaction holding `token`, for latency.
    public func commitTime(of token: Token) -> Int64? {
        transactionIndex(of: token).map { txns[$0].commitTime }
    }

    /// Forgets everything in flight (the session restarts from the slot).
    public mutating func reset(confirmed: LSN) {
        txns.removeAll(keepingCapacity: true)
        head = 0
        inFlightEvents = 0
        confirmableLSN = confirmed
    }

    // MARK: internals

    /// Records the ack in the transaction's own bitmap, in place (no copy: the record is
    /// only ever touched through `txns[index]`), and rejects a second ack for the same
    /// token so a buggy duplicate cannot release another event.
    private mutating func markAcked(index: Int, slot: Int) -> Bool {
        let words = (txns[index].events + 63) / 64
        if txns[index].ackBits.count < words {
            txns[index].ackBits.append(contentsOf: repeatElement(0, count: words - txns[index].ackBits.count))
        }
        let word = slot / 64, bit = UInt64(1) << UInt64(slot % 64)
        if txns[index].ackBits[word] & bit != 0 { return false }
        txns[index].ackBits[word] |= bit
        return true
    }

    private func transactionIndex(of token: Token) -> Int? {
        var low = head, high = txns.count - 1
        while low <= high {
            let mid = (low + high) / 2
            // Fields read in place: copying the record would retain its ack bitmap per step.
            let first = txns[mid].firstToken
            if token < first { high = mid - 1 }
            else if token >= first + Token(txns[mid].events) { low = mid + 1 }
            else { return mid }
        }
        return nil
    }

    private mutating func advance() -> Bool {
        var moved = false
        while head < txns.count, let end = txns[head].endLSN, txns[head].acked == txns[head].events {
            if end > confirmableLSN { confirmableLSN = end; moved = true }
            txns[head].ackBits = []  // retired: free the bitmap now, not at compaction
            head += 1
        }
        if head > 1024 && head * 2 > txns.count {
            txns.removeFirst(head)
            head = 0
        }
        return moved
    }
}
