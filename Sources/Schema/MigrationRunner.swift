public import PostgresClient

/// Applies `Migration.all` in order, each in its own transaction, under a transaction-level
/// advisory lock so concurrent runners (several relays starting at once) serialize.
/// Applied migrations are recorded with their checksum; an edited one is refused.
///
/// The checksum is the lower-case hex SHA-256 of the SQL text's UTF-8 bytes, computed by
/// the server (`encode(sha256(bytea), 'hex')`). The bytes travel as a binary `bytea`
/// parameter, so the database and client encodings cannot change them; the digest is the
/// same one the earlier in-process implementation recorded, so databases migrated before
/// the switch keep verifying.
public struct MigrationRunner: Sendable {
    /// Arbitrary but fixed: every `outbox-relay migrate` takes the same lock.
    public static let advisoryLockKey: Int64 = 0x6F7574_626F78  // "outbox"
    public let migrations: [Migration]

    public init(migrations: [Migration] = Migration.all) { self.migrations = migrations }

    public struct Report: Sendable, Equatable {
        public var applied: [String]
        public var alreadyApplied: Int
    }

    @discardableResult
    public func run(on connection: PGConnection) async throws -> Report {
        // Under the lock too: concurrent CREATE TABLE IF NOT EXISTS races in the catalog.
        try await connection.transaction { conn in
            try await conn.query("SELECT pg_advisory_xact_lock($1)", [.int(MigrationRunner.advisoryLockKey)])
            try await conn.query("""
                CREATE TABLE IF NOT EXISTS outbox_schema_migrations (
                    version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """)
        }
        var report = Report(applied: [], alreadyApplied: 0)
        for migration in migrations {
            let applied = try await connection.transaction { conn in
                try await conn.query("SELECT pg_advisory_xact_lock($1)", [.int(MigrationRunner.advisoryLockKey)])
                let existing = try await conn.query("""
                    SELECT name, checksum = \(MigrationRunner.checksumSQL("$2")) AS matches
                    FROM outbox_schema_migrations WHERE version = $1
                    """, [.int(migration.version), .bytea(migration.checksumInput)])
                if let row = existing.rows.first {
                    guard try row.bool("matches") else {
                        throw SchemaError.tamperedMigration(name: migration.name, recordedAs: try row.string("name"))
                    }
                    return false
                }
                do {
                    try await conn.executeScript(migration.sql)
                } catch {
                    throw SchemaError.migrationFailed(name: migration.name, underlying: "\(error)")
                }
                try await conn.query("""
                    INSERT INTO outbox_schema_migrations (version, name, checksum)
                    VALUES ($1, $2, \(MigrationRunner.checksumSQL("$3")))
                    """, [.int(migration.version), .text(migration.name), .bytea(migration.checksumInput)])
                return true
            }
            if applied { report.applied.append(migration.name) } else { report.alreadyApplied += 1 }
        }
        return report
    }

    /// The SQL expression for the recorded checksum of the `bytea` parameter `parameter`.
    static func checksumSQL(_ parameter: String) -> String { "encode(sha256(\(parameter)::bytea), 'hex')" }

    /// Names of migrations not applied yet (for `status` and readiness checks).
    public func pending(on connection: PGConnection) async throws -> [String] {
        let exists = try await connection.query("SELECT to_regclass('outbox_schema_migrations') IS NOT NULL AS present")
        guard try exists.single().bool("present") else { return migrations.map(\.name) }
        let applied = Set(try await connection.query("SELECT version FROM outbox_schema_migrations").rows.map { try $0.int("version") })
        return migrations.filter { !applied.contains($0.version) }.map(\.name)
    }
}
