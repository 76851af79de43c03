import EphemeralServers
import Foundation
import PostgresClient
import Schema
import Testing

@Suite("Least-privilege roles")
struct RolesTests {
    @Test("the relay role reads the outbox, updates only sweeper columns, and cannot read other tables")
    func relayRole() async throws {
        try await withTestContext(broker: false) { ctx in
            let admin = try await ctx.migrated()
            let roles = try await ctx.leastPrivilegeRoles(on: admin)
            try await roles.apply(on: admin, relayPassword: "pw-\(ctx.databaseName)", consumerPassword: nil)  // idempotent
            let attributes = try await admin.query("SELECT rolreplication, rolcanlogin FROM pg_roles WHERE rolname = $1", [.text(roles.relayRole)]).single()
            #expect(try attributes.bool("rolreplication") && attributes.bool("rolcanlogin"))
            let seed = try await DomainSeed.create(on: admin, seats: 1, users: 1)
            _ = try await BookingFacade().reserveSeat(on: admin, seatId: seed.seatIds[0], userId: seed.users[0].userId, token: seed.users[0].token)

            let relay = try await PGConnection.connect(ctx.postgres.url(database: ctx.databaseName, user: roles.relayRole))
            #expect(try await relay.query("SELECT count(*) AS n FROM outbox").single().int("n") == 1)
            try await relay.query("UPDATE outbox SET attempts = attempts + 1, last_sent_at = now()")
            for table in ["booking", "payment", "app_user", "wait_token", "seat", "booking_record", "payment_ledger"] {
                let error = await #expect(throws: PGError.self) { try await relay.query("SELECT * FROM \(table)") }
                #expect(error?.sqlState == "42501", "relay must not read \(table)")
            }
            let payloadUpdate = await #expect(throws: PGError.self) { try await relay.query("UPDATE outbox SET payload = '{}'") }
            #expect(payloadUpdate?.sqlState == "42501")
            let insert = await #expect(throws: PGError.self) {
                try await relay.query("INSERT INTO outbox (topic, mq_key, type, payload) VALUES ('t', 'k', 't', '{}')")
            }
            #expect(insert?.sqlState == "42501")
            // The start check reads the migration record; neither role may change it.
            #expect(try await MigrationRunner().pending(on: relay).isEmpty, "the relay role reads the migration record")
            let recordWrite = await #expect(throws: PGError.self) { try await relay.query("DELETE FROM outbox_schema_migrations") }
            #expect(recordWrite?.sqlState == "42501")

            let consumer = try await PGConnection.connect(ctx.postgres.url(database: ctx.databaseName, user: roles.consumerRole))
            try await consumer.query("UPDATE outbox SET status = 'PUBLISHED'")
            let bookingRead = await #expect(throws: PGError.self) { try await consumer.query("SELECT * FROM booking") }
            #expect(bookingRead?.sqlState == "42501")
            #expect(try await MigrationRunner().pending(on: consumer).isEmpty, "the consumer role reads the migration record")
            try await ctx.drop(roles, on: admin)
        }
    }

    /// Grants applied before the start check existed do not let the roles read the
    /// migration record: the check is skipped with a warning and the fix, not a refusal.
    @Test("a role that may not read the migration record (older grants) gets a warning with the fix at start, and the start goes on")
    func olderGrantsWarn() async throws {
        try await withTestContext { ctx in
            let admin = try await ctx.migrated()
            let roles = try await ctx.leastPrivilegeRoles(on: admin)
            try await admin.query("REVOKE SELECT ON outbox_schema_migrations FROM \(quoteIdentifier(roles.consumerRole))")
            let url = ctx.postgres.url(database: ctx.databaseName, user: roles.consumerRole)
            let process = try ChildProcess([try relayBinary(), "consume", "--database-url", url, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                                            "--http-port", "0", "--log-level", "info"],
                                           outputPath: NSTemporaryDirectory() + "older-grants-\(ctx.databaseName).log")
            #expect(await eventually { process.output.contains("cannot check that the database is migrated") }, "\(process.output.suffix(2_000))")
            #expect(process.output.contains("outbox-relay migrate --grant-roles"), "the fix: \(process.output.suffix(2_000))")
            // Past the check: the consumers start (and a SIGTERM then stops them cleanly).
            #expect(await eventually { process.output.contains("consuming") || process.exitStatusIfExited() != nil },
                    "\(process.output.suffix(2_000))")
            #expect(process.exitStatusIfExited() == nil, "the start went on: \(process.output.suffix(2_000))")
            let status = await process.terminate(timeout: .seconds(30))
            #expect(status == 0, "\(process.output.suffix(2_000))")
            try await ctx.drop(roles, on: admin)
        }
    }
}
