import PostgresClient

/// Notify mode's doorbell flag for one channel (`outbox_relay_doorbell`): the I/O half of
/// `DoorbellPolicy`. Written only by the relay that holds the slot.
struct Doorbell {
    let channel: String

    /// The flag write is an asynchronous commit: visibility to writers comes at commit, not
    /// at flush, and a flag lost in a crash is rewritten by the next session; so waiting for
    /// the WAL flush would only delay the relay. It is set for this one transaction
    /// (`set_config(..., true)`, i.e. SET LOCAL), never for the session: behind a
    /// transaction pooler a session SET leaks to the server connection the writers get next,
    /// making their commits asynchronous too, and a commit not yet flushed is invisible to
    /// the slot, so their rows waited for the fallback timer (and lost durability).
    func write(listening: Bool, on connection: PGConnection) throws {
        do {
            try connection.queryBlocking("""
                INSERT INTO outbox_relay_doorbell AS d (channel, listening)
                SELECT $1, $2::boolean FROM (SELECT set_config('synchronous_commit', 'off', true)) AS this_commit_only
                ON CONFLICT (channel) DO UPDATE SET listening = EXCLUDED.listening, changed_at = now()
                """, [.text(channel), .text(listening ? "true" : "false")])
        } catch let error as PGError where error.sqlState == "42P01" {
            throw RelayError(.schemaOutdated, "Notify capture needs table outbox_relay_doorbell, which does not exist.",
                             fix: "run `outbox-relay migrate --capture notify` (migration 0005 and the trigger that reads it).")
        } catch let error as PGError where error.sqlState == "42501" {
            throw RelayError(.schemaOutdated, "The relay's role may not write table outbox_relay_doorbell.",
                             fix: "grant it: `outbox-relay migrate --grant-roles`, or GRANT SELECT, INSERT, UPDATE ON outbox_relay_doorbell TO the relay role (sql/roles.sql).")
        }
    }
}
