import PGOutput
import RelayCore
import Testing

/// Issue 32, item 3: after a PostgreSQL crash or a reconnect, transactions that were
/// already acknowledged are skipped, exactly at the boundary, and nothing else is.
@Suite("Acknowledged horizon")
struct AcknowledgedHorizonTests {
    typealias History = AcknowledgedHorizon.WALHistory
    static let primary = History(systemIdentifier: "7300000000000000001", timeline: 1)
    static let promoted = History(systemIdentifier: "7300000000000000001", timeline: 2)
    static let otherCluster = History(systemIdentifier: "7300000000000000999", timeline: 1)

    static let sources: [(slot: UInt64, recorded: UInt64?, inProcess: (UInt64, History?)?, now: History?, expected: UInt64, why: String)] = [
        (100, nil, nil, primary, 100, "no record yet: the slot's own position"),
        (100, 100, nil, primary, 100, "slot and record agree: nothing to skip beyond the server's own rule"),
        (100, 400, nil, primary, 400, "PostgreSQL crash: the slot fell back behind the record"),
        (100, 400, (600, primary), primary, 600, "reconnect: this process acknowledged past the record's last write"),
        (100, 400, (300, primary), primary, 400, "a peer recorded further than this process acknowledged (takeover)"),
        (100, 400, (600, promoted), primary, 400, "the acknowledgement was on another timeline"),
        (100, 400, (600, primary), promoted, 400, "failover inside one process: the new primary's timeline differs"),
        (100, 400, (600, otherCluster), primary, 400, "another cluster with the same LSNs"),
        (100, 400, (600, primary), nil, 400, "the server's history could not be read now: memory counts for nothing"),
        (100, 400, (600, nil), primary, 400, "the history was unknown when it was acknowledged"),
        (100, nil, (600, primary), primary, 600, "no record, but this process acknowledged"),
        (500, 400, nil, primary, 500, "never below the slot (a slot ahead of its record is refused earlier)"),
        (0, nil, nil, nil, 0, "first start"),
    ]

    @Test("a session's horizon from the slot, the record and what this process acknowledged", arguments: 0..<sources.count)
    func horizon(_ index: Int) {
        let row = Self.sources[index]
        let horizon = AcknowledgedHorizon(slot: LSN(row.slot), recorded: row.recorded.map { LSN($0) },
                                          inProcess: row.inProcess.map { .init(acknowledged: LSN($0.0), history: $0.1) },
                                          history: row.now)
        #expect(horizon.lsn == LSN(row.expected), "\(row.why)")
    }

    @Test("carried across sessions: a session that failed right after resetting the line loses nothing; another history keeps nothing")
    func carriedAcrossSessions() {
        // Session 1 on the primary skipped up to 600 (its horizon) and acknowledged up to 900.
        let first = AcknowledgedHorizon(slot: LSN(100), recorded: LSN(600), inProcess: nil, history: Self.primary)
        let afterFirst = first.known(on: Self.primary).raised(byLine: LSN(900))
        #expect(afterFirst == .init(acknowledged: LSN(900), history: Self.primary))
        // Session 2 reset the line to the slot (100) and failed at once (the server still
        // recovering): session 3 still skips up to 900.
        let second = AcknowledgedHorizon(slot: LSN(100), recorded: LSN(600), inProcess: afterFirst, history: Self.primary)
        let afterSecond = second.known(on: Self.primary).raised(byLine: LSN(100))
        #expect(AcknowledgedHorizon(slot: LSN(100), recorded: LSN(600), inProcess: afterSecond, history: Self.primary).lsn == LSN(900))
        // A failover in between: the new primary's record decides alone, and from then on
        // what is known belongs to the new timeline.
        let promoted = AcknowledgedHorizon(slot: LSN(300), recorded: LSN(500), inProcess: afterSecond, history: Self.promoted)
        #expect(promoted.lsn == LSN(500))
        #expect(promoted.known(on: Self.promoted) == .init(acknowledged: LSN(500), history: Self.promoted))
    }

    /// The horizon is an acknowledged end LSN (or a record boundary). A transaction is
    /// skipped when its commit record starts below it; the next commit record may start
    /// exactly at it, and that transaction was never acknowledged.
    static let boundary: [(commit: UInt64, skipped: Bool, why: String)] = [
        (0x0FA0, true, "committed well below"),
        (0x0FFF, true, "its commit record starts one byte below the horizon: it ends at or below it"),
        (0x1000, false, "its commit record starts exactly at the horizon (the acknowledged one ended there)"),
        (0x1001, false, "above"),
        (0x2000, false, "far above"),
    ]

    @Test("the boundary: commit LSN below the horizon is skipped, at the horizon is published", arguments: 0..<boundary.count)
    func boundaryCases(_ index: Int) {
        let row = Self.boundary[index]
        #expect(AcknowledgedHorizon(lsn: LSN(0x1000)).skips(commitLSN: LSN(row.commit)) == row.skipped, "\(row.why)")
    }

    @Test("a replay: the skipped ones are counted and the first one published after them is reported once")
    func replaySequence() {
        var horizon = AcknowledgedHorizon(lsn: LSN(1_000))
        // (commit LSN, end LSN): A and B were acknowledged (B ended at the horizon); C's
        // commit record follows B's at once, so it shares B's end as its commit LSN.
        let replay: [(UInt64, UInt64)] = [(800, 900), (900, 1_000), (1_000, 1_100), (1_200, 1_300)]
        let decisions = replay.map { horizon.decide(commitLSN: LSN($0.0)) }
        #expect(decisions == [.skip, .skip, .publishAfterSkipping(skipped: 2), .publish])
        #expect(horizon.skipped == 2)
    }

    @Test("nothing to skip: every transaction is published, nothing is reported")
    func noReplay() {
        var horizon = AcknowledgedHorizon(lsn: LSN(1_000))
        #expect([1_000, 1_500, 2_000].map { horizon.decide(commitLSN: LSN($0)) } == [.publish, .publish, .publish])
        #expect(horizon.skipped == 0)
    }

    /// Streamed (protocol v2) transactions: their changes arrive in chunks long before they
    /// commit, interleaved with other transactions, and Stream Commit carries the same
    /// commit and end LSNs as a Commit. The decision is the commit LSN's, never where the
    /// first chunk was.
    static let streamed: [(firstChange: UInt64, commit: UInt64, skipped: Bool, why: String)] = [
        (200, 900, true, "streamed before the crash and committed below the horizon: acknowledged"),
        (200, 1_000, false, "changes began long before the horizon, but it commits exactly at it"),
        (950, 1_400, false, "chunks straddle the horizon, the commit is above it"),
    ]

    @Test("streamed transactions are decided by their Stream Commit's commit LSN", arguments: 0..<streamed.count)
    func streamedTransactions(_ index: Int) {
        let row = Self.streamed[index]
        var horizon = AcknowledgedHorizon(lsn: LSN(1_000))
        #expect(LSN(row.firstChange) < horizon.lsn)
        #expect((horizon.decide(commitLSN: LSN(row.commit)) == .skip) == row.skipped, "\(row.why)")
    }

    /// The whole loop, against the LSN tracker: one session publishes transactions and
    /// receives acknowledgements in random order; it ends (walsender terminated, or crash);
    /// the next session starts from an older slot position and PostgreSQL sends everything
    /// again. Skipped transactions go to the tracker as empty ones. Then:
    /// - every transaction with an unacknowledged event is published again (no loss);
    /// - every transaction in the acknowledged prefix is skipped (no duplicate beyond the
    ///   in-flight window);
    /// - the confirmation moves to the horizon at once, and never past an unacknowledged row.
    @Test("model: a session ends with acknowledgements outstanding; the next one re-sends exactly what was not acknowledged",
          arguments: [21, 22, 23, 24, 25, 26])
    func sessionRestart(seed: UInt64) {
        var rng = Random(seed: seed)
        var first = LSNTracker(confirmed: LSN(10))
        var transactions: [(commit: LSN, end: LSN, tokens: [UInt64])] = []
        var lsn: UInt64 = 10
        for _ in 0..<200 {
            // Commit records are often back to back: the next commit LSN equals this end LSN.
            lsn += rng.next() % 2 == 0 ? 0 : 1 + rng.next() % 50
            let commit = lsn
            lsn += 1 + rng.next() % 40
            first.beginTransaction()
            let tokens = (0..<Int(rng.next() % 4)).map { _ in first.registerEvent() }
            first.commitTransaction(endLSN: LSN(lsn))
            transactions.append((LSN(commit), LSN(lsn), tokens))
        }
        var tokens = transactions.flatMap(\.tokens)
        tokens.shuffle(using: &rng)
        let acked = Set(tokens.prefix(Int(rng.next() % UInt64(tokens.count + 1))))
        for token in acked { first.acknowledge(token) }
        let acknowledgedInMemory = first.confirmableLSN

        // The crash: the slot fell back to where it started; the record holds some
        // acknowledged position at or below what the process knew.
        let recorded = transactions.map(\.end).filter { $0 <= acknowledgedInMemory }.randomElement(using: &rng) ?? LSN(10)
        for inMemory in [false, true] {
            var horizon = AcknowledgedHorizon(slot: LSN(10), recorded: recorded,
                                              inProcess: inMemory ? .init(acknowledged: acknowledgedInMemory, history: Self.primary) : nil,
                                              history: Self.primary)
            var second = LSNTracker(confirmed: LSN(10))
            var firstRepublishedWithRows: LSN?
            for txn in transactions {
                second.beginTransaction()
                let fullyAcked = txn.tokens.allSatisfy(acked.contains)
                if horizon.decide(commitLSN: txn.commit) == .skip {
                    #expect(fullyAcked, "seed \(seed): skipped \(txn.commit) with an unacknowledged row")
                } else {
                    #expect(txn.end > horizon.lsn, "seed \(seed): re-sent \(txn.commit), which ended at or below the horizon")
                    for _ in txn.tokens { _ = second.registerEvent() }
                    if !txn.tokens.isEmpty && firstRepublishedWithRows == nil { firstRepublishedWithRows = txn.commit }
                }
                second.commitTransaction(endLSN: txn.end)
            }
            let horizonLSN = inMemory ? acknowledgedInMemory : recorded
            #expect(horizon.lsn == horizonLSN)
            // Exactly the transactions that end at or below the horizon were skipped.
            #expect(horizon.skipped == transactions.filter { $0.end <= horizonLSN }.count)
            // The skipped ones moved the confirmation up to the horizon (empty transactions
            // behind it follow), and nothing published but unacknowledged is covered.
            #expect(second.confirmableLSN >= horizonLSN)
            if let firstRepublishedWithRows { #expect(second.confirmableLSN <= firstRepublishedWithRows) }
        }
    }
}
