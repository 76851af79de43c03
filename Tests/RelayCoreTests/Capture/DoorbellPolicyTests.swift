import RelayCore
import Testing

/// Issue 16: the doorbell rings only while the relay is idle. Each row is a sequence of
/// events from a fresh session (flag written clear): a read that found rows or not, or a
/// wake-up from sleep by a notification or by the fallback timer. Flag writes are carried
/// out as asked; the row lists the actions and the flag at the end.
@Suite("Doorbell policy")
struct DoorbellPolicyTests {
    enum Event { case rows, empty, notified, timer }
    typealias A = DoorbellPolicy.Action
    static let table: [(events: [Event], actions: [A], listening: Bool)] = [
        // Session start, nothing waiting: ring in, read once more, then sleep.
        ([.empty, .empty], [.ringIn, .sleep], true),
        // A backlog at start: read until empty with the flag clear (writers skip NOTIFY),
        // then ring in and read once more before sleeping.
        ([.rows, .rows, .rows, .empty, .empty], [.read, .read, .read, .ringIn, .sleep], true),
        // A notification: clear the flag before reading, read until empty, ring in, read
        // once more, sleep.
        ([.empty, .empty, .notified, .rows, .empty, .empty], [.ringIn, .sleep, .ringOut, .read, .ringIn, .sleep], true),
        // The fallback timer: read with the flag left set; nothing found, sleep again.
        ([.empty, .empty, .timer, .empty], [.ringIn, .sleep, .read, .sleep], true),
        // The timer finds a row (the race the doorbell leaves): the relay is busy now.
        ([.empty, .empty, .timer, .rows, .empty, .empty], [.ringIn, .sleep, .read, .ringOut, .ringIn, .sleep], true),
        // A row committed between ring-in and the read after it is found by that read: the
        // relay clears the flag, reads on, and never sleeps on unread rows.
        ([.empty, .rows, .empty, .empty], [.ringIn, .ringOut, .ringIn, .sleep], true),
        // Load: once cleared, the flag stays clear for as long as reads find rows.
        ([.empty, .empty, .notified, .rows, .rows, .rows, .rows], [.ringIn, .sleep, .ringOut, .read, .read, .read, .read], false),
    ]

    static func apply(_ event: Event, to policy: inout DoorbellPolicy) -> A {
        let action: A
        switch event {
        case .rows: action = policy.drained(foundRows: true)
        case .empty: action = policy.drained(foundRows: false)
        case .notified: action = policy.woke(byNotification: true)
        case .timer: action = policy.woke(byNotification: false)
        }
        if action == .ringIn { policy.flagWritten(listening: true) }
        if action == .ringOut { policy.flagWritten(listening: false) }
        return action
    }

    @Test("actions", arguments: 0..<table.count)
    func actions(_ index: Int) {
        let row = Self.table[index]
        var policy = DoorbellPolicy(listening: false)
        let taken = row.events.map { Self.apply($0, to: &policy) }
        #expect(taken == row.actions)
        #expect(policy.listening == row.listening)
    }

    @Test("it sleeps only with the flag set, right after a read that found nothing")
    func neverSleepsDeaf() {
        // Random runs, driven the way the capture loop drives it: a sleep always follows an
        // empty read made while the flag was already set, so every row committed before
        // that read was read, and every row after it rings (but for the documented race).
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var policy = DoorbellPolicy(listening: false)
            var action = A.read
            for _ in 0..<60 {
                if action == .sleep {
                    action = Self.apply(Bool.random(using: &generator) ? .notified : .timer, to: &policy)
                    continue
                }
                let found = Bool.random(using: &generator)
                let listeningBefore = policy.listening
                action = Self.apply(found ? .rows : .empty, to: &policy)
                if action == .sleep { #expect(!found && listeningBefore) }
                if action == .ringIn { #expect(!found && !listeningBefore) }
                if found { #expect(!policy.listening, "rows found: writers must stop ringing") }
            }
        }
    }

    @Test("a deaf LISTEN: a set flag is cleared, the flag is never set again while deaf, and rings in once LISTEN hears again")
    func deaf() {
        var policy = DoorbellPolicy(listening: false)
        #expect(policy.drained(foundRows: false) == .ringIn)
        policy.flagWritten(listening: true)
        #expect(!policy.mustClear(deaf: false))
        #expect(policy.mustClear(deaf: true), "writers would ring for no one")
        policy.flagWritten(listening: false)
        #expect(!policy.mustClear(deaf: true))
        #expect(policy.drained(foundRows: false, deaf: true) == .sleep, "polls instead of ringing in")
        #expect(policy.drained(foundRows: true, deaf: true) == .read)
        #expect(policy.woke(byNotification: false) == .read)
        #expect(policy.drained(foundRows: false, deaf: true) == .sleep)
        #expect(!policy.listening)
        #expect(policy.drained(foundRows: false, deaf: false) == .ringIn, "LISTEN hears again")
    }

    @Test("a failed flag write leaves the policy where it was")
    func failedWrite() {
        var policy = DoorbellPolicy(listening: false)
        #expect(policy.drained(foundRows: false) == .ringIn)
        // The write failed (the session restarts): the policy still believes the flag clear
        // and asks again.
        #expect(policy.drained(foundRows: false) == .ringIn)
        #expect(!policy.listening)
    }
}

/// Issue 31 item 4: the lost-wake-up race. A ring-in with transactions in progress makes the
/// sleep also end when some of them have ended, to read once more. Driven as the capture
/// loop drives it: a ring-out's flag write follows the read after it, when that read found rows.
@Suite("Doorbell policy: writers in progress at ring-in")
struct DoorbellWritersInProgressTests {
    typealias A = DoorbellPolicy.Action
    enum Event { case rows, empty, notified, timer, someEnded, allEnded }
    /// Each row: a fresh session whose ring-ins see transactions in progress; events, the
    /// actions taken, and whether the sleep still awaits writers at the end.
    static let table: [(events: [Event], actions: [A], awaiting: Bool)] = [
        // Ring in, read empty, sleep awaiting them; they end: read once more, then sleep plainly.
        ([.empty, .empty, .allEnded, .empty], [.ringIn, .sleep, .read, .sleep], false),
        // The read after they ended finds the racing writer's row: busy again.
        ([.empty, .empty, .allEnded, .rows], [.ringIn, .sleep, .read, .ringOut], false),
        // One ended, others run on (a long transaction): read, and sleep awaiting the rest.
        ([.empty, .empty, .someEnded, .empty], [.ringIn, .sleep, .read, .sleep], true),
        ([.empty, .empty, .someEnded, .empty, .allEnded, .empty], [.ringIn, .sleep, .read, .sleep, .read, .sleep], false),
        // The fallback timer ends the wait for them (long transactions, no racing writer).
        ([.empty, .empty, .timer, .empty], [.ringIn, .sleep, .read, .sleep], false),
        // A notification for rows already read: the flag stays set, and so does the wait.
        ([.empty, .empty, .notified, .empty], [.ringIn, .sleep, .ringOut, .sleep], true),
        // Ringing out forgets them; the next ring-in takes a new list.
        ([.empty, .empty, .notified, .rows], [.ringIn, .sleep, .ringOut, .read], false),
        ([.empty, .empty, .notified, .rows, .empty], [.ringIn, .sleep, .ringOut, .read, .ringIn], true),
    ]

    @Test("actions", arguments: 0..<table.count)
    func actions(_ index: Int) {
        let row = Self.table[index]
        var policy = DoorbellPolicy(listening: false)
        var taken: [A] = []
        var ringOutAfterRead = false
        for event in row.events {
            let action: A
            switch event {
            case .rows:
                if ringOutAfterRead { policy.flagWritten(listening: false, writersInProgress: true) }
                action = policy.drained(foundRows: true)
            case .empty: action = policy.drained(foundRows: false)
            case .notified: action = policy.woke(byNotification: true)
            case .timer: action = policy.woke(byNotification: false)
            case .someEnded: action = policy.writersEnded(stillRunning: true)
            case .allEnded: action = policy.writersEnded(stillRunning: false)
            }
            if action == .ringIn { policy.flagWritten(listening: true, writersInProgress: true) }
            ringOutAfterRead = action == .ringOut
            taken.append(action)
        }
        #expect(taken == row.actions)
        #expect(policy.awaitingWriters == row.awaiting)
    }

    @Test("a ring-in with nobody in progress awaits nothing")
    func nobodyInProgress() {
        var policy = DoorbellPolicy(listening: false)
        #expect(policy.drained(foundRows: false) == .ringIn)
        policy.flagWritten(listening: true, writersInProgress: false)
        #expect(!policy.awaitingWriters)
        #expect(policy.drained(foundRows: false) == .sleep)
    }
}

@Suite("Writer wait")
struct WriterWaitTests {
    @Test("slices double from 2 ms up to 100 ms and never pass the limit")
    func slices() {
        var wait = WriterWait(limit: .milliseconds(500))
        var slices: [Duration] = []
        while let slice = wait.nextSlice {
            slices.append(slice)
            wait.stillRunning(after: slice)
        }
        #expect(slices == [2, 4, 8, 16, 32, 64, 100, 100, 100, 74].map { Duration.milliseconds($0) })
        #expect(slices.reduce(.zero, +) == .milliseconds(500))
    }

    @Test("a zero limit does not wait")
    func zeroLimit() {
        #expect(WriterWait(limit: .zero).nextSlice == nil)
    }
}
