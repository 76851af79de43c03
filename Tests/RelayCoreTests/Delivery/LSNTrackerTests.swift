import PGOutput
@testable import RelayCore
import Testing

@Suite("LSN tracker")
struct LSNTrackerTests {
    @Test func inOrderAcks() {
        var t = LSNTracker(confirmed: LSN(10))
        t.beginTransaction()
        let a = t.registerEvent(), b = t.registerEvent()
        t.commitTransaction(endLSN: LSN(100))
        #expect(t.confirmableLSN == LSN(10))
        t.acknowledge(a)
        #expect(t.confirmableLSN == LSN(10), "half a transaction is not confirmable")
        let moved = t.acknowledge(b)
        #expect(moved)
        #expect(t.confirmableLSN == LSN(100))
        #expect(t.isIdle)
    }

    @Test("acks arriving out of order across partitions never confirm past an unacknowledged earlier transaction")
    func outOfOrder() {
        var t = LSNTracker()
        var tokens: [[UInt64]] = []
        for (i, end) in [100, 200, 300].enumerated() {
            t.beginTransaction()
            tokens.append((0..<(i + 1)).map { _ in t.registerEvent() })
            t.commitTransaction(endLSN: LSN(UInt64(end)))
        }
        for token in tokens[2] { t.acknowledge(token) }
        for token in tokens[1] { t.acknowledge(token) }
        #expect(t.confirmableLSN == .invalid)
        t.acknowledge(tokens[0][0])
        #expect(t.confirmableLSN == LSN(300))
    }

    @Test("an open (uncommitted) transaction holds the position even when all its events are acknowledged")
    func openTransactionHolds() {
        var t = LSNTracker()
        t.beginTransaction()
        let a = t.registerEvent()
        t.acknowledge(a)
        #expect(t.confirmableLSN == .invalid)
        let followed = t.observeServerWALEnd(LSN(999))
        #expect(!followed, "not idle while a transaction is open")
        t.commitTransaction(endLSN: LSN(50))
        #expect(t.confirmableLSN == LSN(50))
    }

    @Test func emptyTransactionsConfirmImmediately() {
        var t = LSNTracker()
        t.beginTransaction()
        let moved = t.commitTransaction(endLSN: LSN(70))
        #expect(moved)
        #expect(t.confirmableLSN == LSN(70))
    }

    @Test("an empty transaction shares its first token with the next one; a duplicate ack still cannot stand in for a missing event")
    func emptyTransactionThenNonEmpty() {
        // T0 {a} is held back (its ack comes last), T1 is empty, T2 {b, c}. T1 begins at the
        // same token as T2, so anything keyed by a transaction's first token confuses them.
        var t = LSNTracker()
        t.beginTransaction()
        let a = t.registerEvent()
        t.commitTransaction(endLSN: LSN(100))
        t.beginTransaction()
        t.commitTransaction(endLSN: LSN(200))
        t.beginTransaction(commitTime: 33)
        let b = t.registerEvent(), c = t.registerEvent()
        t.commitTransaction(endLSN: LSN(300))
        #expect(t.commitTime(of: b) == 33 && t.commitTime(of: c) == 33)

        t.acknowledge(b)
        #expect(t.confirmableLSN == .invalid)
        t.acknowledge(a)
        #expect(t.confirmableLSN == LSN(200), "T0 and the empty T1 are done; T2 still waits for c")
        // Releasing T1 must not release T2's acknowledgements: b again is a duplicate.
        let movedByDuplicate = t.acknowledge(b)
        #expect(!movedByDuplicate)
        #expect(t.ignoredAcks == 1, "the second ack of b was taken as new")
        #expect(t.confirmableLSN == LSN(200), "confirmed past event c, which was never acknowledged")
        #expect(t.inFlightEvents == 1)
        t.acknowledge(c)
        #expect(t.confirmableLSN == LSN(300))
        #expect(t.isIdle && t.ignoredAcks == 1)
    }

    @Test("a million empty transactions behind an unacknowledged head keep the tracker O(1), and confirm once the head is acknowledged")
    func emptyTransactionsBehindStuckHead() {
        var t = LSNTracker()
        t.beginTransaction()
        let head = t.registerEvent()
        t.commitTransaction(endLSN: LSN(1))
        var largestOpen = 0
        for i in 0..<1_000_000 {
            t.beginTransaction()
            largestOpen = max(largestOpen, t.openTransactions)
            let moved = t.commitTransaction(endLSN: LSN(UInt64(2 + i)))
            if moved { Issue.record("confirmed past the unacknowledged head at transaction \(i)"); return }
        }
        #expect(t.openTransactions <= 2, "\(t.openTransactions) records live")
        #expect(largestOpen <= 2, "up to \(largestOpen) records live")
        #expect(t.confirmableLSN == .invalid)
        #expect(!t.isIdle)
        let moved = t.acknowledge(head)
        #expect(moved)
        #expect(t.confirmableLSN == LSN(1_000_001))
        #expect(t.isIdle)
        // Still a normal tracker afterwards.
        t.beginTransaction()
        let next = t.registerEvent()
        t.commitTransaction(endLSN: LSN(2_000_000))
        t.acknowledge(next)
        #expect(t.confirmableLSN == LSN(2_000_000) && t.isIdle && t.ignoredAcks == 0)
    }

    @Test("idle: follows the keepalive WAL end, never backwards; busy: ignores it")
    func keepalive() {
        var t = LSNTracker(confirmed: LSN(100))
        let first = t.observeServerWALEnd(LSN(500))
        #expect(first)
        #expect(t.confirmableLSN == LSN(500))
        let backwards = t.observeServerWALEnd(LSN(400))
        #expect(!backwards)
        #expect(t.confirmableLSN == LSN(500))
        t.beginTransaction()
        let a = t.registerEvent()
        t.commitTransaction(endLSN: LSN(600))
        let busy = t.observeServerWALEnd(LSN(900))
        #expect(!busy)
        #expect(t.confirmableLSN == LSN(500))
        t.acknowledge(a)
        #expect(t.confirmableLSN == LSN(600))
        let idleAgain = t.observeServerWALEnd(LSN(900))
        #expect(idleAgain)
    }

    @Test("duplicate and unknown acks are ignored and counted")
    func duplicates() {
        var t = LSNTracker()
        t.beginTransaction()
        let a = t.registerEvent(), b = t.registerEvent()
        t.commitTransaction(endLSN: LSN(10))
        t.acknowledge(a)
        t.acknowledge(a)
        t.acknowledge(12_345)
        #expect(t.ignoredAcks == 2)
        #expect(t.confirmableLSN == .invalid, "a duplicate ack must not stand in for event b")
        t.acknowledge(b)
        #expect(t.confirmableLSN == LSN(10))
    }

    @Test("reset forgets in-flight work; late acks from the old session are ignored")
    func reset() {
        var t = LSNTracker()
        t.beginTransaction()
        let old = t.registerEvent()
        t.commitTransaction(endLSN: LSN(10))
        t.reset(confirmed: LSN(5))
        #expect(t.isIdle && t.confirmableLSN == LSN(5))
        t.acknowledge(old)
        #expect(t.ignoredAcks == 1 && t.confirmableLSN == LSN(5))
        t.beginTransaction()
        let fresh = t.registerEvent()
        #expect(fresh != old)
        t.commitTransaction(endLSN: LSN(20))
        t.acknowledge(fresh)
        #expect(t.confirmableLSN == LSN(20))
    }

    @Test func commitTimeLookup() {
        var t = LSNTracker()
        t.beginTransaction(commitTime: 77)
        let a = t.registerEvent()
        #expect(t.commitTime(of: a) == 77)
        #expect(t.commitTime(of: a + 1) == nil)
    }

    @Test("property: after every ack, confirmable = end of the longest fully-acknowledged commit prefix", arguments: [1, 2, 3, 4, 5])
    func randomized(seed: UInt64) {
        var rng = Random(seed: seed)
        var t = LSNTracker()
        var transactions: [(end: LSN, tokens: [UInt64])] = []
        var lsn: UInt64 = 0
        for _ in 0..<300 {
            t.beginTransaction()
            let count = Int(rng.next() % 6)  // includes empty transactions
            let tokens = (0..<count).map { _ in t.registerEvent() }
            lsn += 1 + rng.next() % 1_000
            t.commitTransaction(endLSN: LSN(lsn))
            transactions.append((LSN(lsn), tokens))
        }
        var pending = transactions.flatMap(\.tokens)
        pending.shuffle(using: &rng)
        var acked = Set<UInt64>()
        func expected() -> LSN {
            var result = LSN.invalid
            for txn in transactions {
                guard txn.tokens.allSatisfy(acked.contains) else { break }
                result = txn.end
            }
            return result
        }
        #expect(t.confirmableLSN == expected())
        for token in pending {
            t.acknowledge(token)
            acked.insert(token)
            if t.confirmableLSN != expected() {
                Issue.record("after acking \(token): \(t.confirmableLSN) != \(expected())")
                return
            }
        }
        #expect(t.confirmableLSN == transactions.last!.end)
        #expect(t.isIdle && t.ignoredAcks == 0)
    }

    @Test("model check: commits, empty transactions, acks and duplicate acks interleaved at random", arguments: [11, 12, 13, 14, 15, 16, 17, 18])
    func interleavedWithDuplicates(seed: UInt64) {
        var rng = Random(seed: seed)
        var t = LSNTracker()
        // The reference: every transaction with its tokens, and the set of tokens acknowledged.
        var committed: [(end: LSN, tokens: [UInt64])] = []
        var open: [UInt64]?
        var issued: [UInt64] = []
        var acked = Set<UInt64>()
        var ignored = 0
        var lsn: UInt64 = 0
        func expected() -> LSN {
            var result = LSN.invalid
            for txn in committed {
                guard txn.tokens.allSatisfy(acked.contains) else { break }
                result = txn.end
            }
            return result
        }
        for step in 0..<4_000 {
            switch rng.next() % 10 {
            case 0, 1:  // begin, or commit the open one (often empty)
                if let tokens = open {
                    lsn += 1 + rng.next() % 100
                    t.commitTransaction(endLSN: LSN(lsn))
                    committed.append((LSN(lsn), tokens))
                    open = nil
                } else {
                    t.beginTransaction()
                    open = []
                }
            case 2, 3:
                guard open != nil else { continue }
                let token = t.registerEvent()
                open!.append(token)
                issued.append(token)
            default:  // an ack: mostly a real one, sometimes a duplicate or an unknown token
                guard !issued.isEmpty else { continue }
                let token = rng.next() % 8 == 0 ? issued[Int(rng.next() % UInt64(issued.count))] + 1 : issued[Int(rng.next() % UInt64(issued.count))]
                if acked.contains(token) || !issued.contains(token) { ignored += 1 } else { acked.insert(token) }
                t.acknowledge(token)
            }
            if t.confirmableLSN != expected() || t.ignoredAcks != ignored || t.inFlightEvents != issued.count - acked.count {
                Issue.record("step \(step): confirmable \(t.confirmableLSN) (expected \(expected())), ignored \(t.ignoredAcks) (expected \(ignored)), in flight \(t.inFlightEvents) (expected \(issued.count - acked.count))")
                return
            }
        }
    }

    @Test("a very large transaction (100k events) acknowledged in reverse")
    func largeTransaction() {
        var t = LSNTracker()
        t.beginTransaction()
        let tokens = (0..<100_000).map { _ in t.registerEvent() }
        t.commitTransaction(endLSN: LSN(1))
        for token in tokens.reversed().dropLast() { t.acknowledge(token) }
        #expect(t.confirmableLSN == .invalid)
        t.acknowledge(tokens[0])
        #expect(t.confirmableLSN == LSN(1))
    }
}

/// Deterministic generator so a failing seed reproduces.
struct Random: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}
