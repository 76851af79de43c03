@testable import Consumers
import KafkaClient
import Testing

/// The consumer's core, fed events and checked for the actions it returns
/// (`DeliveryStateMachineTests` and postgres-nio's connection state machine tests are the
/// model). No broker, no database.
@Suite("Consumer state machine")
struct ConsumerStateMachineTests {
    static let policy = ConsumerStateMachine.Policy(batchSize: 3, retryBackoffMaximum: .seconds(10), missingRowWindow: .seconds(10))

    func machine(_ policy: ConsumerStateMachine.Policy = Self.policy) -> ConsumerStateMachine {
        ConsumerStateMachine(policy: policy)
    }

    func message(_ topic: String = "BOOK_SAVE", partition: Int32 = 0, offset: Int64) -> KafkaMessage {
        KafkaMessage(topic: topic, partition: partition, offset: offset, key: nil, value: [], headers: [])
    }

    func tp(_ topic: String, _ partition: Int32) -> TopicPartition { TopicPartition(topic: topic, partition: partition) }

    @Test("a batch fills up to batch-size; the poll wait is short only while a batch is in flight")
    func batching() {
        var m = machine()
        #expect(m.pollTimeout == .milliseconds(100))
        #expect(m.received(message(offset: 0)) == .pollMore)
        #expect(m.received(message(offset: 1)) == .pollMore)
        #expect(m.received(message(offset: 2)) == .batchFull)
        #expect(m.startApply()?.map(\.offset) == [0, 1, 2])
        #expect(m.inHand.isEmpty)
        #expect(m.pollTimeout == .milliseconds(5))
    }

    @Test("nothing in hand starts nothing")
    func emptyHand() {
        var m = machine()
        #expect(m.startApply() == nil)
        #expect(m.inFlight == nil)
    }

    @Test("outcomes settle a batch: applied effects by type, duplicates, poison in batch order, the next offset per partition")
    func settlement() {
        var m = machine(.init(batchSize: 10, retryBackoffMaximum: .seconds(10), missingRowWindow: .seconds(10)))
        let batch = [message(offset: 7), message(partition: 1, offset: 3), message(offset: 8),
                     message("PAYMENT_SAVE", offset: 40), message(partition: 1, offset: 4)]
        for item in batch { _ = m.received(item) }
        _ = m.startApply()
        let settlement = m.applied([.applied(type: "BOOK_SAVE"), .duplicate, .poison(reason: "unknown_type", detail: "x"),
                                    .applied(type: "PAYMENT_SAVE"), .poison(reason: "missing_outbox_row", detail: "y")])
        #expect(settlement.appliedTypes == ["BOOK_SAVE", "PAYMENT_SAVE"])
        #expect(settlement.duplicates == 1)
        #expect(settlement.poison.map(\.message.offset) == [8, 4])
        #expect(settlement.poison.map(\.reason) == ["unknown_type", "missing_outbox_row"])
        #expect(settlement.offsets == [tp("BOOK_SAVE", 0): 9, tp("BOOK_SAVE", 1): 5, tp("PAYMENT_SAVE", 0): 41])
        #expect(settlement.size == 5)
        #expect(m.inFlight == nil, "settled: the next batch may go")
        #expect(m.totals == .init(), "counted only once its offsets are committed")
        m.settled(settlement)
        #expect(m.totals == .init(applied: 2, duplicates: 1, deadLettered: 2))
    }

    @Test("asynchronous commits are owed a synchronous one, merged to the highest offset; a sync commit pays them")
    func commitsOwed() {
        var m = machine()
        #expect(m.commitsToSettle == nil)
        m.committedAsynchronously([tp("A", 0): 10, tp("A", 1): 5])
        m.committedAsynchronously([tp("A", 0): 12])
        m.committedAsynchronously([tp("A", 1): 3])  // a lower offset never moves a partition back
        #expect(m.commitsToSettle == [tp("A", 0): 12, tp("A", 1): 5])
        m.committedSynchronously()
        #expect(m.commitsToSettle == nil)
    }

    @Test("a failed batch frees the flight; only a simulated crash stops further hand-overs")
    func applyFailed() {
        var m = machine()
        _ = m.received(message(offset: 0)); _ = m.startApply()
        m.applyFailed(crashed: false)
        #expect(m.inFlight == nil && !m.crashed)
        _ = m.received(message(offset: 1)); _ = m.startApply()
        m.applyFailed(crashed: true)
        #expect(m.inFlight == nil && m.crashed)
    }

    /// One row per failure in a row: (reason, expected action, stalled after it).
    @Test("database failures back off 100, 200, 400 ms … up to retry-backoff-maximum; the third in a row reports a stall; success clears it",
          arguments: [
            (1, Duration.milliseconds(100), false), (2, .milliseconds(200), false), (3, .milliseconds(400), true),
            (7, .milliseconds(6_400), true), (8, .seconds(10), true), (20, .seconds(10), true),
          ])
    func databaseRetries(failures: Int, lastDelay: Duration, stalled: Bool) {
        var m = machine()
        var action = ConsumerStateMachine.RetryAction.giveUp
        for _ in 0..<failures { action = m.databaseFailed("deadlock detected [SQLSTATE 40P01]") }
        #expect(action == .retry(after: lastDelay, stallBegins: failures == 3))
        #expect((m.stalledReason != nil) == stalled)
        if stalled {
            #expect(m.stalledReason == "applying a batch failed \(failures) times in a row, retrying: deadlock detected [SQLSTATE 40P01]")
        }
        m.databaseSucceeded()
        #expect(m.stalledReason == nil)
        #expect(m.databaseFailed("again") == .retry(after: .milliseconds(100)), "a success starts the count over")
    }

    @Test("dead-letter failures back off 100 ms per attempt up to 5 s and stall by their own cause",
          arguments: [(1, Duration.milliseconds(100), false), (3, .milliseconds(300), true), (60, .seconds(5), true)])
    func deadLetterRetries(failures: Int, lastDelay: Duration, stalled: Bool) {
        var m = machine()
        var action = ConsumerStateMachine.RetryAction.giveUp
        for _ in 0..<failures { action = m.deadLetterFailed("Broker: Topic authorization failed", topic: "outbox.consumer.dlq") }
        #expect(action == .retry(after: lastDelay, stallBegins: failures == 3))
        #expect((m.stalledReason != nil) == stalled)
        if stalled { #expect(m.stalledReason?.hasPrefix("the dead-letter topic outbox.consumer.dlq refused \(failures) sends in a row") == true) }
        m.deadLettersSent()
        #expect(m.stalledReason == nil)
    }

    /// A PostgreSQL restart fails a few retries and heals: the shell logs the failure that
    /// begins a stall at error, once, the others as warnings, and the success that ends it.
    @Test("one stall, one error: only the third failure in a row begins it; the success that ends it says so; the next stall begins anew")
    func stallBeginsOnce() {
        var m = machine()
        let database = (0..<6).map { _ in m.databaseFailed("down") }.map { if case .retry(_, let begins) = $0 { begins } else { false } }
        #expect(database == [false, false, true, false, false, false])
        #expect(m.databaseSucceeded() == true, "this success ends a stall")
        #expect(m.databaseSucceeded() == false)
        for _ in 0..<2 { _ = m.databaseFailed("down") }
        #expect(m.databaseSucceeded() == false, "two failures are no stall")
        let again = (0..<3).map { _ in m.databaseFailed("down") }
        #expect(again.last == .retry(after: .milliseconds(400), stallBegins: true))

        let deadLetter = (0..<4).map { _ in m.deadLetterFailed("refused", topic: "dlq") }.map { if case .retry(_, let begins) = $0 { begins } else { false } }
        #expect(deadLetter == [false, false, true, false])
        #expect(m.deadLettersSent() == true)
        #expect(m.deadLettersSent() == false)
    }

    @Test("a stall clears only by its own cause: a batch applied meanwhile does not hide a dead-letter topic that refuses")
    func stallByCause() {
        var m = machine()
        for _ in 0..<3 { _ = m.deadLetterFailed("refused", topic: "dlq") }
        for _ in 0..<3 { _ = m.databaseFailed("down") }
        #expect(m.stalledReason?.contains("dead-letter") == true, "the dead-letter stall is named first")
        m.databaseSucceeded()
        #expect(m.stalledReason?.contains("dead-letter") == true)
        m.deadLettersSent()
        #expect(m.stalledReason == nil)
        for _ in 0..<3 { _ = m.databaseFailed("down") }
        m.deadLettersSent()
        #expect(m.stalledReason?.contains("applying a batch failed") == true)
    }

    /// (failures before the stop, expected action of the next failure)
    @Test("once stopping, a batch that keeps failing is given up instead of retried forever",
          arguments: [(0, false), (3, false), (4, true), (10, true)])
    func databaseGiveUpWhileStopping(failuresBefore: Int, givesUp: Bool) {
        var m = machine()
        for _ in 0..<failuresBefore { _ = m.databaseFailed("down") }
        m.requestStop()
        let action = m.databaseFailed("down")
        #expect((action == .giveUp) == givesUp, "\(action)")
    }

    @Test("while running, failures are retried without end", arguments: [4, 50])
    func neverGivesUpWhileRunning(failures: Int) {
        var m = machine()
        for _ in 0..<failures {
            let r1 = m.databaseFailed("down")
            #expect(r1 != .giveUp)
            let r2 = m.deadLetterFailed("refused", topic: "dlq")
            #expect(r2 != .giveUp)
        }
    }

    @Test("once stopping, the fourth dead-letter failure in a row gives the batch up", arguments: [(3, false), (4, true)])
    func deadLetterGiveUpWhileStopping(failures: Int, givesUp: Bool) {
        var m = machine()
        m.requestStop()
        var action = ConsumerStateMachine.RetryAction.retry(after: .zero)
        for _ in 0..<failures { action = m.deadLetterFailed("refused", topic: "dlq") }
        #expect((action == .giveUp) == givesUp, "\(action)")
    }

    @Test("a row not visible yet is waited for 20, 40 … 640 ms, then the last attempt accepts it missing")
    func visibility() {
        var m = machine()
        var delays: [Duration] = []
        var attempt = 0
        while !ConsumerStateMachine.acceptsMissingRows(attempt: attempt) {
            delays.append(m.visibilityRetry(attempt))
            attempt += 1
        }
        #expect(delays == [20, 40, 80, 160, 320, 640].map { .milliseconds($0) })
        #expect(m.visibilityRetries == 6)
    }

    /// (produced ms, now ms, may still appear)
    @Test("a missing row may still appear only while its message is younger than missing-row-window",
          arguments: [(Int64?.none, Int64(50_000), true), (40_001, 50_000, true), (40_000, 50_000, false), (0, 50_000, false),
                      (60_000, 50_000, true)])
    func missingRowWindow(produced: Int64?, now: Int64, mayAppear: Bool) {
        #expect(Self.policy.rowMayStillAppear(producedAtMilliseconds: produced, nowMilliseconds: now) == mayAppear)
    }
}
