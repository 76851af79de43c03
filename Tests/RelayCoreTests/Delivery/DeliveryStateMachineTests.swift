import PGOutput
import RelayCore
import Testing

/// The delivery core, fed events and checked for the actions it returns (postgres-nio's
/// connection state machine tests are the model).
@Suite("Delivery state machine")
struct DeliveryStateMachineTests {
    let t0 = ContinuousClock.now

    func machine(events: Int = 3, bytes: Int = 1 << 20) -> DeliveryStateMachine {
        DeliveryStateMachine(maxEvents: events, maxBytes: bytes, confirmed: LSN(100))
    }

    func token(_ action: DeliveryStateMachine.ReserveAction) -> UInt64? {
        if case .publish(let token) = action { return token }
        return nil
    }

    @Test("the window admits up to its bound, then says wait; an ack makes room")
    func window() {
        var m = machine(events: 2)
        m.beginTransaction(commitTime: 1)
        let a = token(m.reserve(bytes: 10, now: t0)), b = token(m.reserve(bytes: 10, now: t0))
        #expect(a != nil && b != nil)
        let r1 = m.reserve(bytes: 10, now: t0)
        #expect(r1 == .wait)
        let effects = m.acknowledge([(a!, 10)], published: true)
        #expect(effects.accepted == 1 && effects.commitTimes == [1])
        let r2 = m.reserve(bytes: 10, now: t0)
        #expect(token(r2) != nil)
    }

    @Test("the confirmable LSN moves only when every event of the committed prefix is acknowledged")
    func confirm() {
        var m = machine()
        m.beginTransaction(commitTime: 1)
        let a = token(m.reserve(bytes: 1, now: t0))!, b = token(m.reserve(bytes: 1, now: t0))!
        let r3 = m.commitTransaction(endLSN: LSN(200))
        #expect(!r3)
        let r4 = m.acknowledge([(b, 1)], published: true)
        #expect(!r4.confirmableMoved)
        #expect(m.confirmableLSN == LSN(100))
        let r5 = m.acknowledge([(a, 1)], published: true)
        #expect(r5.confirmableMoved)
        #expect(m.confirmableLSN == LSN(200))
    }

    @Test("failures: purge ignored, row faults dead-lettered, operator problems pause, anything else restarts",
          arguments: [
            ("_PURGE_QUEUE", DeliveryStateMachine.FailureAction.ignore, false),
            ("_MSG_SIZE_TOO_LARGE", .deadLetter(.messageTooLarge), false),
            ("INVALID_TOPIC_EXCEPTION", .deadLetter(.invalidTopic), false),
            ("_TRANSPORT", .restartSession("delivery failed with _TRANSPORT: m"), true),
          ])
    func failures(_ name: String, _ expected: DeliveryStateMachine.FailureAction, _ restarts: Bool) {
        var m = machine()
        let r6 = m.failed(topic: "T", errorName: name, message: "m", stage: .report)
        #expect(r6 == expected)
        #expect((m.restartReason != nil) == restarts)
        #expect(m.pause == nil)
    }

    @Test("an operator problem pauses the line: no dead letter, the session restarts, the pause survives resets and ends with the first delivery")
    func pause() {
        var m = machine()
        let action = m.failed(topic: "BOOK_SAVE", errorName: "TOPIC_AUTHORIZATION_FAILED", message: "denied", stage: .report)
        let expected = DeliveryStateMachine.Pause(topic: "BOOK_SAVE", problem: .authorization("TOPIC_AUTHORIZATION_FAILED"), detail: "denied")
        #expect(action == .pause(expected, firstReport: true))
        #expect(m.pause == expected)
        #expect(m.restartIsPause)
        guard case .restartSession = m.reserve(bytes: 1, now: t0) else { Issue.record("a paused line must not publish on"); return }
        m.reset(confirmed: LSN(100))  // the next session
        #expect(m.pause == expected, "still paused until a delivery succeeds")
        m.beginTransaction(commitTime: 1)
        let a = token(m.reserve(bytes: 1, now: t0))!
        // A dead-letter acknowledgement is not a successful delivery: still paused.
        let r7 = m.acknowledge([(a, 1)], published: false)
        #expect(r7.resumed == nil)
        let b = token(m.reserve(bytes: 1, now: t0))!
        let r8 = m.acknowledge([(b, 1)], published: true)
        #expect(r8.resumed == expected)
        #expect(m.pause == nil)
    }

    @Test("a paused line that fails again at each retry reports its cause once: again only for another topic or problem, or after it resumed")
    func pauseReportedOnce() {
        var m = machine()
        func fail(_ topic: String, _ name: String) -> Bool? {
            guard case .pause(_, let first) = m.failed(topic: topic, errorName: name, message: "m", stage: .report) else { return nil }
            return first
        }
        #expect(fail("BOOK_SAVE", "TOPIC_AUTHORIZATION_FAILED") == true)
        #expect(fail("BOOK_SAVE", "TOPIC_AUTHORIZATION_FAILED") == false, "a second message of the same session")
        m.reset(confirmed: LSN(100))
        #expect(!m.restartIsPause)
        #expect(fail("BOOK_SAVE", "TOPIC_AUTHORIZATION_FAILED") == false, "the retry fails the same way")
        #expect(m.restartIsPause)
        #expect(fail("PAYMENT_SAVE", "TOPIC_AUTHORIZATION_FAILED") == true, "another topic")
        #expect(fail("PAYMENT_SAVE", "POLICY_VIOLATION") == true, "another problem")
        m.reset(confirmed: LSN(100))
        m.beginTransaction(commitTime: 1)
        let a = token(m.reserve(bytes: 1, now: t0))!
        #expect(m.acknowledge([(a, 1)], published: true).resumed != nil)
        #expect(fail("PAYMENT_SAVE", "POLICY_VIOLATION") == true, "paused again after it resumed")
    }

    @Test("a restart requested before the pause stays that restart: it is not the pause's")
    func restartBeforePause() {
        var m = machine()
        _ = m.failed(topic: "T", errorName: "_TRANSPORT", message: "m", stage: .report)
        _ = m.failed(topic: "T", errorName: "TOPIC_AUTHORIZATION_FAILED", message: "m", stage: .report)
        #expect(m.restartReason == "delivery failed with _TRANSPORT: m")
        #expect(!m.restartIsPause, "the session ended for a transport error, which is logged as one")
    }

    @Test("late reports of a previous session neither release the window nor count")
    func lateReports() {
        var m = machine(events: 1)
        m.beginTransaction(commitTime: 1)
        let old = token(m.reserve(bytes: 5, now: t0))!
        m.reset(confirmed: LSN(100))
        m.beginTransaction(commitTime: 2)
        let fresh = token(m.reserve(bytes: 5, now: t0))!
        let r9 = m.reserve(bytes: 5, now: t0)
        #expect(r9 == .wait)
        #expect(old != fresh, "tokens are never reused across sessions")
        let r10 = m.acknowledge([(old, 5)], published: true)
        #expect(r10.accepted == 0)
        #expect(m.inFlightEvents == 1)
    }

    @Test("a stop has a deadline: reserve abandons after it, a drain times out with the unacknowledged count")
    func stop() {
        var m = machine(events: 1)
        m.beginTransaction(commitTime: 1)
        let a = token(m.reserve(bytes: 1, now: t0))!
        m.requestStop(deadline: t0 + .seconds(30))
        m.requestStop(deadline: t0 + .seconds(60))  // a later request keeps the first deadline
        #expect(m.stopDeadline == t0 + .seconds(30))
        let r11 = m.reserve(bytes: 1, now: t0 + .seconds(1))
        #expect(r11 == .wait, "full window, deadline not reached")
        let r12 = m.reserve(bytes: 1, now: t0 + .seconds(30))
        #expect(r12 == .abandon)
        #expect(m.drainState(now: t0 + .seconds(10), deadline: t0 + .seconds(99)) == .waiting)
        #expect(m.drainState(now: t0 + .seconds(30), deadline: t0 + .seconds(99)) == .timedOut(unacknowledged: 1))
        _ = m.acknowledge([(a, 1)], published: true)
        #expect(m.drainState(now: t0 + .seconds(31), deadline: t0 + .seconds(99)) == .drained)
    }

    @Test("a restart request wins over waiting for room")
    func restartWhileFull() {
        var m = machine(events: 1)
        m.beginTransaction(commitTime: 1)
        _ = m.reserve(bytes: 1, now: t0)
        let r13 = m.reserve(bytes: 1, now: t0)
        #expect(r13 == .wait)
        m.requestRestart("fatal")
        m.requestRestart("second")
        let r14 = m.reserve(bytes: 1, now: t0)
        #expect(r14 == .restartSession("fatal"))
        m.reset(confirmed: LSN(100))
        #expect(m.restartReason == nil)
    }

    @Test("random acknowledgement orders never confirm past an unacknowledged event (property)")
    func property() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var m = machine(events: 1_000)
            var tokens: [(UInt64, Int, UInt64)] = []  // token, size, end LSN of its transaction
            var end: UInt64 = 100
            for _ in 0..<Int.random(in: 1...20, using: &generator) {
                m.beginTransaction(commitTime: 1)
                end += UInt64.random(in: 1...50, using: &generator)
                for _ in 0..<Int.random(in: 0...5, using: &generator) {
                    tokens.append((token(m.reserve(bytes: 1, now: t0))!, 1, end))
                }
                _ = m.commitTransaction(endLSN: LSN(end))
            }
            tokens.shuffle(using: &generator)
            var acked = Set<UInt64>()
            for (token, size, _) in tokens {
                _ = m.acknowledge([(token, size)], published: true)
                acked.insert(token)
                let unacked = tokens.filter { !acked.contains($0.0) }.map(\.2).min()
                if let unacked { #expect(m.confirmableLSN.rawValue < unacked) }
            }
            #expect(m.confirmableLSN.rawValue == end)
        }
    }
}
