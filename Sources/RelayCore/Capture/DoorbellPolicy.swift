/// When notify capture asks writers to ring (NOTIFY) and when it lets them skip it.
///
/// Every notifying commit takes a cluster-wide lock in PostgreSQL's `PreCommit_Notify`, so
/// notifying writers serialise: with a NOTIFY per commit, 8 writers ran at half speed. A
/// relay that is busy reading the slot does not need to be told about new rows, so it
/// clears the doorbell flag (`outbox_relay_doorbell.listening`) and the outbox trigger
/// skips `pg_notify`. Only an idle relay rings in, and then reads the slot once more before
/// it sleeps, so a row committed while the flag was still clear is not left waiting.
///
/// The one race left: a writer whose trigger read the flag (clear) just before the relay
/// set it, and which commits after the relay's last read. Nothing rings for it; the
/// fallback timer (`notify-fallback-interval`) reads the slot anyway, which bounds its wait.
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
        /// notification or the fallback timer.
        case sleep
    }

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
    public mutating func woke(byNotification: Bool) -> Action {
        byNotification && listening ? .ringOut : .read
    }

    /// A read of the slot finished; `foundRows` says whether it published anything.
    public mutating func drained(foundRows: Bool) -> Action {
        if foundRows { return listening ? .ringOut : .read }
        return listening ? .sleep : .ringIn
    }

    /// The flag write for `.ringIn` or `.ringOut` committed.
    public mutating func flagWritten(listening: Bool) {
        self.listening = listening
    }
}
