import EphemeralServers
import Foundation
import PostgresClient
import Relay
import Schema
import Testing

/// Issue 32, items 1 and 2, on PostgreSQL 17+ (scripts/test's second pass): an existing
/// slot becomes a failover slot when no other process holds it, and a slot PostgreSQL 18
/// invalidated for idleness is refused naming that cause.
@Suite("Failover slots (PostgreSQL 17+)")
struct FailoverSlotTests {
    @Test("an existing slot without failover gets it at the relay's session start; not while another walsender holds it (a rolling deploy)")
    func failoverTurnedOnForExistingSlot() async throws {
        try await withTestContext { ctx in
            try requirePostgres(17, ctx.postgres, for: "ALTER_REPLICATION_SLOT ... (FAILOVER)")
            let db = try await ctx.migrated()
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])
            func failover() async throws -> Bool {
                try await db.query("SELECT failover FROM pg_replication_slots WHERE slot_name = $1", [.text(ctx.slotName)]).single().bool("failover")
            }
            #expect(try await failover() == false)
            // The old relay of a rolling deploy: another walsender streams the slot.
            let old = try ChildProcess([ctx.postgres.binary("pg_recvlogical"), "-d", ctx.databaseURL, "-S", ctx.slotName, "--start",
                                        "-o", "proto_version=2", "-o", "publication_names=outbox_pub", "-f", "/dev/null"],
                                       outputPath: NSTemporaryDirectory() + "recvlogical-\(ctx.databaseName).log")
            #expect(await eventually {
                (try? await db.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", [.text(ctx.slotName)]).single().bool("active")) == true
            }, "pg_recvlogical did not start streaming: \(old.output)")
            let relay = try RunningRelay.start(ctx) { $0.standbyPollInterval = .milliseconds(300) }
            try await Task.sleep(for: .seconds(2))
            #expect(relay.service.health.current.state != .halted, "the relay must wait as a standby, not halt")
            #expect(try await failover() == false, "the slot was altered while another process held it")
            // The old relay stops: the new one takes over and turns failover on.
            old.signal(SIGTERM)
            _ = await old.waitForExit()
            #expect(await eventually { relay.service.health.current.state == .streaming })
            #expect(try await failover(), "the relay did not turn failover on after taking over")
            try await insertOutboxRows(db, transactions: 3, rowsPerTransaction: 2)
            #expect(try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 6).count == 6)
            try await relay.stop()
        }
    }

    @Test("a slot PostgreSQL 18 invalidated after idle_replication_slot_timeout is refused naming that setting")
    func idleTimeoutInvalidation() async throws {
        try await withTestContext(dedicatedCluster: true) { ctx in
            try requirePostgres(18, ctx.postgres, for: "idle_replication_slot_timeout")
            let db = try await ctx.migrated()
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])
            try await db.query("ALTER SYSTEM SET idle_replication_slot_timeout = '1s'")
            try await db.query("SELECT pg_reload_conf()")
            // Slots are invalidated for idleness at checkpoints.
            #expect(await eventually(timeout: .seconds(30), every: .milliseconds(500)) {
                _ = try? await db.query("CHECKPOINT")
                return (try? await db.query("SELECT invalidation_reason FROM pg_replication_slots WHERE slot_name = $1", [.text(ctx.slotName)])
                    .single().optionalString("invalidation_reason")) == "idle_timeout"
            })
            let relay = try RunningRelay.start(ctx)
            let error = await #expect(throws: RelayError.self) { try await relay.task.value }
            #expect(error?.code == .slotInvalidated, "\(String(describing: error))")
            for word in ["idle_timeout", "idle_replication_slot_timeout", "slot reset"] {
                #expect(error?.description.contains(word) == true, "\(word) missing from: \(String(describing: error))")
            }
            #expect(error?.description.contains("max_slot_wal_keep_size") == false, "the wrong cause: \(String(describing: error))")
        }
    }
}
