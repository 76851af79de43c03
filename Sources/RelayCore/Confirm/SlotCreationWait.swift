/// What a replication slot's creation waits for, said to the operator while it waits.
///
/// PostgreSQL creates a logical slot only once every transaction that had a transaction id
/// when the creation began has ended, in any database of the cluster. One session left
/// idle in a transaction, or a forgotten prepared transaction, holds a relay's very first
/// start (and `slot reset`) for as long as it lives, and the creation itself says nothing.
/// The relay finds the holders (`pg_blocking_pids` of the creating backend) and names them
/// with the fix; creation goes on by itself once they end.
public enum SlotCreationWait {
    /// The first report comes after this long (a creation beside short transactions ends
    /// well within it), then one every `reportEvery` while the wait lasts.
    public static let firstReport = Duration.seconds(5)
    public static let reportEvery = Duration.seconds(30)

    /// A session (or prepared transaction) the creation waits for. Columns a role without
    /// `pg_read_all_stats` may not read of another user's session are nil.
    public struct Holder: Equatable, Sendable {
        /// 0 for a prepared transaction (`pg_blocking_pids`' convention).
        public var pid: Int32
        public var database: String?
        public var user: String?
        public var application: String?
        public var state: String?
        public var openSeconds: Int64?

        public init(pid: Int32, database: String? = nil, user: String? = nil, application: String? = nil,
                    state: String? = nil, openSeconds: Int64? = nil) {
            self.pid = pid
            self.database = database
            self.user = user
            self.application = application
            self.state = state
            self.openSeconds = openSeconds
        }

        var isPrepared: Bool { pid == 0 }

        var description: String {
            if isPrepared { return "a prepared transaction (pg_prepared_xacts)" }
            let details = [database.map { "database \($0)" }, user.map { "user \($0)" },
                           application.flatMap { $0.isEmpty ? nil : "application \($0)" }, state,
                           openSeconds.map { "transaction open \($0) s" }].compactMap { $0 }
            return "process \(pid)" + (details.isEmpty ? "" : " (\(details.joined(separator: ", ")))")
        }
    }

    /// The warning and its fix. `holders` is nil when they could not be looked up.
    public static func report(slot: String, waited: Duration, holders: [Holder]?) -> (message: String, fix: String) {
        let lead = "creating replication slot \"\(slot)\" has waited \(waited.components.seconds) s for transactions in progress "
            + "(PostgreSQL creates a logical slot once every transaction that was running when the creation began has ended, in any database)"
        let sessions = (holders ?? []).filter { !$0.isPrepared }
        let prepared = (holders ?? []).contains { $0.isPrepared }
        guard let holders, !holders.isEmpty else {
            return ("\(lead); none is visible to this role now",
                    "end long or idle-in-transaction sessions and prepared transactions; find them as a superuser: "
                        + "SELECT pid, datname, state, xact_start FROM pg_stat_activity WHERE backend_xid IS NOT NULL ORDER BY xact_start, "
                        + "and SELECT * FROM pg_prepared_xacts. The creation goes on by itself once they end")
        }
        var fixes: [String] = []
        if !sessions.isEmpty {
            let pids = sessions.map { String($0.pid) }
            fixes.append("commit or roll back in \(sessions.count == 1 ? "that session" : "those sessions"), or end "
                         + (pids.count == 1 ? "it" : "them") + ": " + pids.map { "SELECT pg_terminate_backend(\($0))" }.joined(separator: "; "))
        }
        if prepared { fixes.append("COMMIT PREPARED or ROLLBACK PREPARED the prepared transaction (its gid: SELECT gid FROM pg_prepared_xacts)") }
        return ("\(lead); waiting for " + holders.map(\.description).joined(separator: ", "),
                fixes.joined(separator: "; ") + ". The creation goes on by itself once they end")
    }
}
