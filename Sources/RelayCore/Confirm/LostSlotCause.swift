/// Why a recorded slot is missing, as far as the server can tell (issue 32, item 4). Pure:
/// the shell reads the server's timeline and version.
///
/// A server starts on timeline 1, and every promotion of a standby (a failover or a
/// switchover) or point-in-time restore moves it to a new one. A slot missing on a server
/// still on timeline 1 was dropped there. On a later timeline it most likely did not survive
/// the promotion or restore: before 17 no logical slot does, and on 17+ only a failover
/// slot a standby had synced.
public enum LostSlotCause: Sendable, Equatable {
    case dropped
    /// Promoted or restored; `failoverSlots` is whether this version has failover slots.
    case promotedOrRestored(timeline: UInt32, failoverSlots: Bool)

    public static func assess(timeline: UInt32, serverMajor: Int) -> LostSlotCause {
        timeline <= 1 ? .dropped
            : .promotedOrRestored(timeline: timeline, failoverSlots: serverMajor >= FailoverReadiness.firstServerMajor)
    }
}
