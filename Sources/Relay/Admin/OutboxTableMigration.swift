public import PGOutput
public import PostgresClient
import Schema

/// `outbox-relay migrate --schema S [--table T]`: installs an outbox table of the outbox's
/// shape (`OutboxTableTemplate`) for a team that keeps its outbox in a schema of its own,
/// and adds it to the relay's publication and to every shard publication (with the shard's
/// row filter), in one transaction: no row can be written to the table before a
/// publication carries it, so the slot decodes every row from the first.
///
/// A table of that name that exists is checked first (`OutboxShape`) and refused with its
/// problems when it lacks what the relay needs; one of the right shape is kept as it is,
/// gains the template's missing indexes and is published. Idempotent. Runs under the
/// migrations' advisory lock, so concurrent `migrate` runs serialize.
public enum OutboxTableMigration {
    public struct Report: Sendable, Equatable {
        public var table: OutboxTable
        /// False when the table existed already.
        public var created: Bool
        /// The publications the table was added to by this run.
        public var addedTo: [String] = []
        /// The relay's publication when it does not exist yet (the relay's first start
        /// creates it for its `outbox-tables`).
        public var missingPublication: String?
    }

    public static func install(_ table: OutboxTable, on db: PGConnection, publication: String = "outbox_pub") async throws -> Report {
        try await db.transaction { conn in
            try await conn.query("SELECT pg_advisory_xact_lock($1)", [.int(MigrationRunner.advisoryLockKey)])
            let found = try await OutboxShapeCheck.read(table, on: conn)
            if let found { try OutboxShape.verify([table], found: [table: found]) }
            try await conn.executeScript(OutboxTableTemplate.sql(for: table))
            var report = Report(table: table, created: found == nil)
            if try await PublicationTables.exists(publication, on: conn) {
                if try await PublicationTables.add(table, to: publication, on: conn) { report.addedTo.append(publication) }
            } else {
                report.missingPublication = publication
            }
            report.addedTo += try await ShardMigration.addTable(table, on: conn, publicationBase: publication)
            return report
        }
    }
}
