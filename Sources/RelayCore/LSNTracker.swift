public import PGOutput

/// Decides which flush LSN the relay may confirm to PostgreSQL (ARCHITECTURE invariant 3):
/// the end LSN of the last transaction in the longest commit-ordered prefix of
/// transactions that are closed (Commit seen) and whose every event has a successful
/// delivery report. Idle, with nothing open or unacknowledged, it may follow the server's
/// keepalive WAL end so a quiet outbox does not pin WAL.
///
/// Events get consecutive tokens (used as librdkafka message opaques), so finding an
/// event's transaction is a binary search over a ring of transaction records; there is
/// no per-event allocation.
public struct LSNTracker: Sendable {
    public typealias Token = UInt64

    struct Txn: Sendable {
        var firstToken: Token
        var events: Int
        var acked: Int
        var endLSN: LSN?
        var commitTime: Int64
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
        precondition(txns.count > head && txns[txns.count - 1].endLSN == nil, "commitTransaction without beginTransaction")
        txns[txns.count - 1].endLSN = endLSN
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
        let slot = Int(token - txns[index].firstToken)
        guard markAcked(index: index, slot: slot) else {
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
        ackBits.removeAll()
    }

    // MARK: internals

    /// Per-transaction acknowledgement bitmaps, keyed by the transaction's first token.
    private var ackBits: [Token: [UInt64]] = [:]

    /// Records the ack in the transaction's bitmap, in place (no copy), and rejects a
    /// second ack for the same token so a buggy duplicate cannot release another event.
    private mutating func markAcked(index: Int, slot: Int) -> Bool {
        let txn = txns[index]
        let words = (txn.events + 63) / 64
        let word = slot / 64, bit = UInt64(1) << UInt64(slot % 64)
        if ackBits[txn.firstToken] == nil { ackBits[txn.firstToken] = [UInt64](repeating: 0, count: words) }
        if ackBits[txn.firstToken]!.count < words {
            ackBits[txn.firstToken]!.append(contentsOf: repeatElement(0, count: words - ackBits[txn.firstToken]!.count))
        }
        if ackBits[txn.firstToken]![word] & bit != 0 { return false }
        ackBits[txn.firstToken]![word] |= bit
        return true
    }

    private func transactionIndex(of token: Token) -> Int? {
        var low = head, high = txns.count - 1
        while low <= high {
            let mid = (low + high) / 2
            let txn = txns[mid]
            if token < txn.firstToken { high = mid - 1 }
            else if token >= txn.firstToken + Token(txn.events) { low = mid + 1 }
            else { return mid }
        }
        return nil
    }

    private mutating func advance() -> Bool {
        var moved = false
        while head < txns.count, let end = txns[head].endLSN, txns[head].acked == txns[head].events {
            if end > confirmableLSN { confirmableLSN = end; moved = true }
            ackBits[txns[head].firstToken] = nil
            head += 1
        }
        if head > 1024 && head * 2 > txns.count {
            txns.removeFirst(head)
            head = 0
        }
        return moved
    }
}
