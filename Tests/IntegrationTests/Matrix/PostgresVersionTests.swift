import EphemeralServers
import Foundation
import PostgresClient
import Relay
import Testing
import Threading

/// Issue 32, item 1: the suite runs on the server one setting names, on every supported
/// version (scripts/test: 15, then the newest), and what the relay does with its slot
/// depends on the version only where PostgreSQL differs.
@Suite("PostgreSQL version matrix")
struct PostgresVersionTests {
    @Test("OUTBOX_PG_BIN naming a directory without a server is an error, never a silent run on 15")
    func explicitBinDirIsNeverReplaced() throws {
        #expect(throws: ServerBinaryMissing.self) {
            try ServerBinaries.postgresBinDir(environment: [ServerBinaries.postgresBinVariable: "/nonexistent/postgresql/bin"])
        }
        #expect(try ServerBinaries.postgresBinDir(environment: [:]) == ServerBinaries.debianPostgresBinDir)
    }

    @Test("the shared test server is the version OUTBOX_PG_BIN names")
    func serverIsTheConfiguredOne() async throws {
        try await withTestContext(broker: false) { ctx in
            let db = try await ctx.connect()
            let number = try await db.query("SELECT current_setting('server_version_num')::int4 AS v").single().int("v")
            let binDir = try ServerBinaries.postgresBinDir()
            #expect(number / 10_000 == ctx.postgres.majorVersion)
            #expect(try ServerBinaries.postgresMajorVersion(binDir: binDir) == ctx.postgres.majorVersion)
            print("PostgreSQL matrix: this run's server is \(number) from \(binDir)")
        }
    }

    @Test("the relay's first start creates a failover slot on 17+, a plain one before; status says which")
    func slotCreatedForFailover() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let relay = try RunningRelay.start(ctx)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let readiness = try await runBlocking { try FailoverSlot.assess(slot: ctx.slotName) { try db.queryBlocking($0) } }
            if ctx.postgres.majorVersion >= 17 {
                let failover = try await db.query("SELECT failover FROM pg_replication_slots WHERE slot_name = $1", [.text(ctx.slotName)])
                    .single().bool("failover")
                #expect(failover, "the slot was created without failover")
                #expect(readiness == .noStandby)  // the shared test server has no standby
            } else {
                #expect(readiness == .unsupported(serverMajor: ctx.postgres.majorVersion))
            }
            try await relay.stop()
        }
    }
}
