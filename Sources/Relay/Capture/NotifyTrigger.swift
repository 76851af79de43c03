public import PostgresClient

/// The statement-level trigger notify capture relies on: one NOTIFY per inserting
/// statement with a constant payload, which PostgreSQL coalesces to one per transaction.
/// Installing and removing are idempotent; stream mode removes it so writers pay nothing.
public enum NotifyTrigger {
    static let functionName = "outbox_relay_notify"
    static let triggerName = "outbox_relay_notify"

    public static func install(on connection: PGConnection, channel: String = "outbox_relay") async throws {
        // The channel is a literal inside the function body: quoted, never spliced raw.
        try await connection.executeScript("""
            CREATE OR REPLACE FUNCTION \(functionName)() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                PERFORM pg_notify(\(quoteLiteral(channel)), '');
                RETURN NULL;
            END
            $fn$;
            CREATE OR REPLACE TRIGGER \(triggerName) AFTER INSERT ON outbox
                FOR EACH STATEMENT EXECUTE FUNCTION \(functionName)();
            """)
    }

    public static func remove(on connection: PGConnection) async throws {
        try await connection.executeScript("""
            DROP TRIGGER IF EXISTS \(triggerName) ON outbox;
            DROP FUNCTION IF EXISTS \(functionName)();
            """)
    }

    public static func isInstalled(on connection: PGConnection) async throws -> Bool {
        try await connection.query("SELECT count(*) AS n FROM pg_trigger WHERE tgname = $1 AND tgrelid = 'outbox'::regclass",
                                   [.text(triggerName)]).single().int("n") > 0
    }

    static func isInstalledBlocking(on connection: PGConnection) throws -> Bool {
        try connection.queryBlocking("SELECT count(*) AS n FROM pg_trigger WHERE tgname = $1 AND tgrelid = 'outbox'::regclass",
                                     [.text(triggerName)]).single().int("n") > 0
    }
}
