import EphemeralServers
import Foundation
import PostgresClient
import Relay
import Testing

/// A relay's first start creates its slot, which PostgreSQL holds until every transaction
/// that was running has ended, in any database of the cluster. Before, the relay waited
/// without a word; now it names the session and the fix, and goes on once it ends.
@Suite("Slot creation held by a transaction")
struct SlotCreationWaitIntegrationTests {
    @Test("a session idle in a transaction in another database holds the slot's creation: the relay names its process and the fix, in both capture modes, and streams once it ends")
    func heldByIdleTransaction() async throws {
        // A cluster of its own: the open transaction would hold every other test's slots too.
        try await withTestContext(dedicatedCluster: true) { ctx in
            _ = try await ctx.migrated()
            let other = try await ctx.postgres.createDatabase(prefix: "billing")
            for capture in [CaptureMode.stream, .notify] {
                let idle = try await PGConnection.connect(other.url, applicationName: "forgotten-session")
                try await idle.query("BEGIN")
                try await idle.query("SELECT pg_current_xact_id()")
                let log = LogCapture()
                let slot = "\(ctx.slotName)_\(capture)"
                let relay = try RunningRelay.start(ctx, slot: slot, capture: capture, logger: log.logger(label: "relay-under-test"))
                let reported = await eventually(timeout: .seconds(40)) {
                    log.all.contains { $0.message.contains("creating replication slot \"\(slot)\" has waited") }
                }
                #expect(reported, "\(capture): \(log.all.map(\.message))")
                let report = try #require(log.all.first { $0.message.contains("creating replication slot") })
                #expect(report.message.contains("waiting for process \(idle.backendPID) (database \(other.name)")
                        && report.message.contains("application forgotten-session") && report.message.contains("idle in transaction"),
                        "\(capture): \(report.message)")
                #expect(report.metadata["fix"]?.contains("SELECT pg_terminate_backend(\(idle.backendPID))") == true, "\(report.metadata)")
                #expect(relay.service.health.current.state != .streaming)

                try await idle.query("ROLLBACK")
                #expect(await eventually { relay.service.health.current.state == .streaming }, "\(capture)")
                try await relay.stop()
            }
        }
    }
}
