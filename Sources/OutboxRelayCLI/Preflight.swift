import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import Schema

/// Fails fast, with the host and port and the fix, when PostgreSQL or Kafka is
/// unreachable at start. (Outages after start are retried, never fatal.)
enum Preflight {
    /// PostgreSQL is reachable, every outbox table has the outbox's shape (a table a team
    /// altered, or one never installed, stops the start with exit 78 and the fix, instead
    /// of failing row by row later) and the database has every migration this version
    /// needs; then Kafka is reachable.
    static func check(databaseURL: String, tables: [OutboxTable], kafka: KafkaConfiguration, logger: Logger) async throws {
        let connection: PGConnection
        do {
            connection = try await PGConnection.connect(databaseURL, connectTimeoutSeconds: 10)
            _ = try await connection.query("SELECT 1")
        } catch {
            throw StartFailure.postgres(error)
        }
        try await OutboxShapeCheck.check(tables, on: connection)
        try await checkMigrations(on: connection, logger: logger)
        let producer = try KafkaProducer(configuration: kafka, logger: logger, onDelivery: { _ in })
        do { try await producer.checkConnectivity(timeout: .seconds(10)) } catch {
            // Closed before the process exits: a close still running on another thread
            // while `exit` tore down the process crashed it now and then (SIGSEGV, exit 139
            // instead of the 78 or 69 a supervisor acts on).
            await producer.close(timeout: .zero)
            throw StartFailure.kafka(error)
        }
        // rd_kafka_destroy waits for librdkafka's threads (~100 ms): let it finish while the
        // relay starts, instead of delaying the start.
        Thread.detachNewThread { producer.close(timeout: .zero) }
    }

    /// A binary started against a database that was not migrated for it (an upgrade that
    /// skipped `migrate`) stops at once with the one fix, instead of each component failing
    /// later on the table or column it misses (a consumer stalled on every batch, a relay
    /// reconnecting). A role that may not read the migration record (grants applied before
    /// this check existed) only gets a warning: the components still say what they miss.
    static func checkMigrations(on connection: PGConnection, logger: Logger) async throws {
        let pending: [String]
        do {
            pending = try await MigrationRunner().pending(on: connection)
        } catch let error as PGError where error.sqlState == "42501" {
            logger.warning("cannot check that the database is migrated: this role may not read outbox_schema_migrations", metadata: [
                "fix": "re-apply the grants: `outbox-relay migrate --grant-roles` (or sql/roles.sql) as the owner of the tables"])
            return
        }
        guard pending.isEmpty else {
            throw CLIError("""
                The database lacks \(pending.count == 1 ? "a migration" : "\(pending.count) migrations") this version of outbox-relay \
                needs: \(pending.joined(separator: ", ")). Fix: run `outbox-relay migrate` (as the owner of the outbox table), \
                then start this again.
                """, status: .operatorNeeded)
        }
    }
}
