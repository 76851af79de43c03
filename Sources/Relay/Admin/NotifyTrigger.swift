public import PGOutput
public import PostgresClient

/// The statement-level outbox trigger notify capture relies on: a NOTIFY per inserting
/// statement with a constant payload (PostgreSQL coalesces them to one per transaction),
/// sent only while the relay's doorbell flag is set (`DoorbellPolicy`). Writers under load,
/// while the relay reads the slot anyway, skip NOTIFY and its cluster-wide commit lock.
///
/// Installing replaces the function body in place, so upgrading from the trigger that
/// notified on every commit is the same `migrate --capture notify` (or any `migrate` with
/// capture = notify). Installing and removing are idempotent; stream mode removes it so
/// writers pay nothing at all.
///
/// One function serves every outbox table (public.outbox, team_a.outbox, ...): each table
/// gets its own trigger calling it, and all ring the same channel, since one relay reads
/// them all through one slot.
public enum NotifyTrigger {
    static let functionName = "outbox_relay_notify"
    static let triggerName = "outbox_relay_notify"
    /// In the function body of every trigger that reads the doorbell: how a relay tells it
    /// from the one that notified on every commit.
    static let doorbellMarker = "outbox_relay_doorbell"

    /// What is installed on the outbox table.
    public enum Installed: Sendable, Equatable {
        case none
        /// Notifies on every inserting commit (before the doorbell): works, at half the
        /// writers' throughput under load.
        case everyCommit
        case doorbell
    }

    public static func install(on connection: PGConnection, channel: String = "outbox_relay",
                               table: OutboxTable = .default) async throws {
        // Qualify the doorbell by the schema it lives in: the trigger runs with each
        // writer's search_path. Missing table = migrations not applied; say so.
        let schema = try await connection.query("""
            SELECT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = to_regclass('outbox_relay_doorbell')
            """).rows.first?.string("schema")
        guard let schema else {
            throw RelayError(.schemaOutdated, "The notify trigger needs table outbox_relay_doorbell, which does not exist.",
                             fix: "run `outbox-relay migrate` (it applies migration 0005, then installs the trigger).")
        }
        // The channel is a literal inside the function body: quoted, never spliced raw.
        try await connection.executeScript("""
            CREATE OR REPLACE FUNCTION \(functionName)() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                -- Ring only when the relay listens: an idle relay sets the flag, a busy one
                -- clears it and reads the slot anyway (outbox-relay notify mode).
                IF EXISTS (SELECT FROM \(quoteIdentifier(schema)).\(doorbellMarker)
                           WHERE channel = \(quoteLiteral(channel)) AND listening) THEN
                    PERFORM pg_notify(\(quoteLiteral(channel)), '');
                END IF;
                RETURN NULL;
            END
            $fn$;
            CREATE OR REPLACE TRIGGER \(triggerName) AFTER INSERT ON \(table.sql)
                FOR EACH STATEMENT EXECUTE FUNCTION \(functionName)();
            """)
    }

    /// Gives `table` a trigger calling the function already installed, with whatever channel
    /// it rings: what a plain `migrate` does for a table it installs in a notify deployment,
    /// without being told the channel.
    public static func attach(on connection: PGConnection, table: OutboxTable) async throws {
        try await connection.query("""
            CREATE OR REPLACE TRIGGER \(triggerName) AFTER INSERT ON \(table.sql)
                FOR EACH STATEMENT EXECUTE FUNCTION \(functionName)()
            """)
    }

    /// Removes the trigger from every table that has it, then the function: stream mode
    /// needs none, and the function cannot go while a trigger still calls it.
    public static func remove(on connection: PGConnection) async throws {
        let tables = try await connection.query("""
            SELECT t.tgrelid::regclass::text AS relation FROM pg_trigger t
            WHERE t.tgname = $1 AND t.tgfoid = to_regprocedure($2)
            """, [.text(triggerName), .text(functionName + "()")]).rows.map { try $0.string("relation") }
        // regclass::text is already quoted where a name needs it.
        let drops = tables.map { "DROP TRIGGER IF EXISTS \(triggerName) ON \($0);" }
        try await connection.executeScript((drops + ["DROP FUNCTION IF EXISTS \(functionName)();"]).joined(separator: "\n"))
    }

    public static func isInstalled(on connection: PGConnection, table: OutboxTable = .default) async throws -> Bool {
        try await installed(on: connection, table: table) != .none
    }

    public static func installed(on connection: PGConnection, table: OutboxTable = .default) async throws -> Installed {
        classify(try await connection.query(installedQuery, [.text(triggerName), .text(table.schema), .text(table.name)]).rows.first?.string("body"))
    }

    static func installedBlocking(on connection: PGConnection, table: OutboxTable = .default) throws -> Installed {
        classify(try connection.queryBlocking(installedQuery, [.text(triggerName), .text(table.schema), .text(table.name)]).rows.first?.string("body"))
    }

    /// By name (no row for a table that does not exist: nothing installed), so that a role
    /// without USAGE on the table's schema can still ask.
    private static let installedQuery = """
        SELECT p.prosrc AS body FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE t.tgname = $1 AND n.nspname = $2 AND c.relname = $3
        """

    private static func classify(_ body: String?) -> Installed {
        guard let body else { return .none }
        return body.contains(doorbellMarker) ? .doorbell : .everyCommit
    }
}
