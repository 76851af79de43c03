/// When notify capture asks writers to ring (NOTIFY) and when it lets them skip it.
///
/// Every notifying commit takes a cluster-wide lock in PostgreSQL's `PreCommit_Notify`, so
/// notifying writers serialise: with a NOTIFY per commit, 8 writers ran at half speed. A
/// relay that is busy reading the slot does not need to be told about new rows, so it
/// clears the doorbell flag (`outbox_relay_doorbell.listening`) and the outbox trigger
/// skips `pg_notify`. Only an idle relay rings in, and then reads the slot once more before
/// it sleeps, so a row committed while the flag was still clear is not left waiting.
///
/// The race ringing in leaves: a writer whose trigger read the flag (clear) just before the
/// relay set it, and which commits after the relay's read. Nothing rings for it. Such a
/// READ COMMITTED writer had its transaction id by then, so it is among the transactions in
/// progress just after the flag write (`pg_snapshot_xip`): while it sleeps, the relay reads
/// once more each time some of those have ended (`writersEnded`, `WriterWait`). Only a REPEATABLE READ writer
/// whose snapshot predates the flag but which took its id later still waits for the
/// fallback timer (`notify-fallback-interval`), which bounds its wait.
///
/// A pure state machine: the capture loop reports each drain and carries out the action.
/// Used by one capture thread only.
public struct DoorbellPolicy: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Read the slot (again) at once.
        case read
        /// Set the flag (writers notify from now on), then read the slot once more.
        case ringIn
        /// There is work: read, and clear the flag (writers stop notifying) once that read
        /// has found rows, while their acknowledgements are on their way.
        case ringOut
        /// The flag is set and the slot was read empty after setting it: wait for a
        /// notification or the fallback timer (and, while `awaitingWriters`, for the
        /// transactions in progress at ring-in to end).
        case sleep
    }

    /// Transactions were in progress when the flag was set, one of them maybe a writer that
    /// read it clear: the sleep also ends when some of them have ended (`writersEnded`).
    public private(set) var awaitingWriters = false

    /// What the flag says: this relay's last successful write. A session starts by
    /// writing it clear (a relay that crashed may have left it set), so it is known.
    public private(set) var listening: Bool

    public init(listening: Bool) {
        self.listening = listening
    }

    /// The relay woke from `.sleep`. A notification means rows wait: clear the flag with
    /// the read that fetches them, so the writers behind this one skip NOTIFY from then on
    /// rather than only after two reads and their acknowledgements. (Under load that
    /// window, multiplied by every catch-up, was most of the notifying commits.) The
    /// fallback timer says nothing about rows: read with the flag as it is.
    /// The timer also ends the wait for the writers of `awaitingWriters`: a transaction
    /// that runs for longer is no writer racing the flag but a long one, and the timer
    /// bounds what a writer among them waits.
    public mutating func woke(byNotification: Bool) -> Action {
        if !byNotification { awaitingWriters = false }
        return byNotification && listening ? .ringOut : .read
    }

    /// Some of the transactions in progress at ring-in have ended since the last read; one
    /// of them may have written a row without ringing: read once more. `stillRunning` says
    /// whether others remain (waiting for all to end would leave a racing writer to the
    /// timer whenever a long, unrelated transaction was running too).
    public mutating func writersEnded(stillRunning: Bool) -> Action {
        awaitingWriters = stillRunning
        return .read
    }

    /// A read of the slot finished; `foundRows` says whether it published anything. `deaf`:
    /// the relay's LISTEN hears nothing (`ListenProbe`), so a ring would reach no one and
    /// still cost its writer the notify lock: the flag stays clear (`mustClear` clears one
    /// set before), and the relay sleeps only as long as its polling allows (`DeafPolling`).
    public mutating func drained(foundRows: Bool, deaf: Bool = false) -> Action {
        if deaf { return foundRows ? .read : .sleep }
        if foundRows { return listening ? .ringOut : .read }
        return listening ? .sleep : .ringIn
    }

    /// The flag must be written clear now: it is set, and the relay's LISTEN has turned out
    /// deaf, so the writers it asks to ring pay for notifications nobody hears.
    public func mustClear(deaf: Bool) -> Bool { deaf && listening }

    /// The flag write for `.ringIn` or `.ringOut` committed; `writersInProgress` says
    /// whether transactions were in progress right after it (meaningful for a ring-in).
    public mutating func flagWritten(listening: Bool, writersInProgress: Bool = false) {
        self.listening = listening
        awaitingWriters = listening && writersInProgress
    }
}
