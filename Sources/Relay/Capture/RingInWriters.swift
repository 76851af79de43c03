import PostgresClient

/// The transactions in progress just after notify capture set the doorbell flag: the I/O
/// half of `DoorbellPolicy.awaitingWriters`. A READ COMMITTED writer whose trigger read the
/// flag clear had inserted, so had a transaction id, before the flag committed; if it has
/// not committed yet it is among these. Taken with `pg_current_snapshot()` and polled with
/// `pg_xact_status`, which take no lock, so the relay never blocks the writers or queues
/// behind another lock holder.
struct RingInWriters {
    /// `pg_current_snapshot()` as text; its `xip` list is the transactions in progress.
    let snapshot: String
    /// How many of them were in progress at the last look.
    private(set) var running: Int

    /// nil when no transaction was in progress (nothing can have raced the flag).
    static func take(on connection: PGConnection) throws -> RingInWriters? {
        let row = try connection.queryBlocking("""
            SELECT pg_current_snapshot()::text AS snapshot,
                   (SELECT count(*) FROM pg_snapshot_xip(pg_current_snapshot())) AS running
            """).single()
        let running = try row.int("running")
        return running > 0 ? RingInWriters(snapshot: try row.string("snapshot"), running: running) : nil
    }

    /// Looks again; returns whether some of them have ended since the last look (prepared
    /// transactions count as in progress).
    mutating func someEnded(on connection: PGConnection) throws -> Bool {
        let now = try connection.queryBlocking("""
            SELECT count(*) AS running FROM pg_snapshot_xip($1::pg_snapshot) AS x
            WHERE pg_xact_status(x) = 'in progress'
            """, [.text(snapshot)]).single().int("running")
        defer { running = now }
        return now < running
    }
}
