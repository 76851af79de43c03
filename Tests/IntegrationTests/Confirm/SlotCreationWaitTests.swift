import EphemeralServers
import Foundation
import PostgresClient
import Relay
import Schema
import Testing

/// A relay's first start creates its slot, which PostgreSQL holds until every transaction
/// that was running has ended, in any database of the cluster. Before, the relay waited
/// without a word; now it names the session and the fix, and goes on once it ends.
@Suite("Slot creation held by a transaction")
struct SlotCreationWaitIntegrationTests {
    /// Stream mode runs as the least-privilege relay role, which may not see another
    /// user's session state (pg_read_all_stats); notify mode as a superuser, which sees it.
    @Test("a session idle in a transaction in another database holds the slot's creation: the relay names its process and the fix, in both capture modes and as the relay role, and streams once it ends")
    func heldByIdleTransaction() async throws {
        // A cluster of its own: the open transaction would hold every other test's slots too.
        try await withTestContext(dedicatedCluster: true) { ctx in
            let admin = try await ctx.migrated()
            let roles = try await ctx.leastPrivilegeRoles(on: admin)
            let other = try await ctx.postgres.createDatabase(prefix: "billing")
            for (capture, asRelayRole) in [(CaptureMode.stream, true), (.notify, false)] {
                let idle = try await PGConnection.connect(other.url, applicationName: "forgotten-session")
                try await idle.query("BEGIN")
                try await idle.query("SELECT pg_current_xact_id()")
                let log = LogCapture()
                let slot = "\(ctx.slotName)_\(capture)"
                let relayURL = ctx.postgres.url(database: ctx.databaseName, user: roles.relayRole, password: "pw-\(ctx.databaseName)")
                let relay = try RunningRelay.start(ctx, slot: slot, capture: capture, configure: { if asRelayRole { $0.databaseURL = relayURL } },
                                                   logger: log.logger(label: "relay-under-test"))
                let reported = await eventually(timeout: .seconds(40)) {
                    log.all.contains { $0.message.contains("creating replication slot \"\(slot)\" has waited") }
                }
                #expect(reported, "\(capture): \(log.all.map(\.message))")
                let report = try #require(log.all.first { $0.message.contains("creating replication slot") })
                #expect(report.message.contains("waiting for process \(idle.backendPID) (database \(other.name), user postgres"),
                        "\(capture): \(report.message)")
                #expect(report.message.contains("idle in transaction") == !asRelayRole, "\(capture): \(report.message)")
                #expect(report.metadata["fix"]?.contains("SELECT pg_terminate_backend(\(idle.backendPID))") == true, "\(report.metadata)")
                #expect(relay.service.health.current.state != .streaming)

                try await idle.query("ROLLBACK")
                #expect(await eventually { relay.service.health.current.state == .streaming }, "\(capture)")
                try await relay.stop()
            }
            try await ctx.drop(roles, on: admin)
        }
    }
}
