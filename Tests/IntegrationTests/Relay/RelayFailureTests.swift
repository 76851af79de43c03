import EphemeralServers
import Foundation
import PGOutput
import PostgresClient
import Relay
import Schema
import Testing

/// The relay's clear errors and recoveries: each failure the issue lists, on real servers.
@Suite("Relay failures")
struct RelayFailureTests {
    func expectHalt(_ relay: RunningRelay, _ code: RelayError.Code, mentioning words: [String]) async {
        let error = await #expect(throws: RelayError.self) { try await relay.task.value }
        #expect(error?.code == code, "\(String(describing: error))")
        for word in words { #expect(error?.description.contains(word) == true, "\(word) missing from: \(String(describing: error))") }
        #expect(error?.fix != nil)
        #expect(relay.service.health.current.state == .halted)
    }

    @Test("wal_level not logical is a clear, halting error")
    func walLevel() async throws {
        let cluster = try await PostgresCluster.start(extraSettings: ["wal_level": "replica"])
        let database = try await cluster.createDatabase()
        let conn = try await PGConnection.connect(database.url)
        try await MigrationsForTests.apply(conn)
        let ctx = TestContext(postgres: cluster, databaseName: database.name, databaseURL: database.url, broker: try await TansuBroker.start())
        defer { ctx.broker?.stop() }
        let relay = try RunningRelay.start(ctx)
        await expectHalt(relay, .walLevelNotLogical, mentioning: ["wal_level", "logical"])
        await cluster.stop()
    }

    @Test("a role without REPLICATION is told so, with the fix")
    func noReplicationRole() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let role = "norep_\(ctx.databaseName)"
            try await db.query("CREATE ROLE \(quoteIdentifier(role)) LOGIN")
            let url = ctx.postgres.url(database: ctx.databaseName, user: role)
            let limited = TestContext(postgres: ctx.postgres, databaseName: ctx.databaseName, databaseURL: url, broker: ctx.broker)
            let relay = try RunningRelay.start(limited)
            await expectHalt(relay, .missingReplicationPrivilege, mentioning: ["REPLICATION"])
            try await db.query("DROP ROLE \(quoteIdentifier(role))")
        }
    }

    @Test("a slot with another plugin is refused")
    func otherPlugin() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", [.text(ctx.slotName)])
            let relay = try RunningRelay.start(ctx)
            await expectHalt(relay, .slotMisconfigured, mentioning: ["test_decoding", "pgoutput"])
        }
    }

    @Test("a slot PostgreSQL invalidated (wal_status = lost) is refused with the recovery steps")
    func invalidatedSlot() async throws {
        let cluster = try await PostgresCluster.start(extraSettings: ["max_slot_wal_keep_size": "1MB", "max_wal_size": "32MB", "min_wal_size": "32MB"])
        let database = try await cluster.createDatabase()
        let conn = try await PGConnection.connect(database.url)
        try await MigrationsForTests.apply(conn)
        let broker = try await TansuBroker.start()
        let ctx = TestContext(postgres: cluster, databaseName: database.name, databaseURL: database.url, broker: broker)
        try await conn.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])
        var lost = false
        for _ in 0..<20 where !lost {
            try await conn.query("CREATE TEMP TABLE IF NOT EXISTS filler AS SELECT 1 AS x")
            try await conn.query("INSERT INTO filler SELECT g FROM generate_series(1, 50000) g")
            try await conn.query("SELECT pg_switch_wal()")
            try await conn.query("CHECKPOINT")
            lost = try await conn.query("SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1", [.text(ctx.slotName)])
                .single().optionalString("wal_status") == "lost"
        }
        #expect(lost, "could not get PostgreSQL to invalidate the slot")
        let relay = try RunningRelay.start(ctx)
        await expectHalt(relay, .slotInvalidated, mentioning: ["wal_status = lost", "max_slot_wal_keep_size"])
        await broker.stop()
        await cluster.stop()
    }

    @Test("the slot dropped under the relay: it halts instead of recreating it and skipping rows")
    func slotDropped() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let relay = try RunningRelay.start(ctx) { $0.reconnectBackoff = .init(initial: .seconds(2), maximum: .seconds(4)) }
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertOutboxRows(db, transactions: 5, rowsPerTransaction: 2)
            _ = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 10)
            // pg_terminate_backend only signals: the walsender may still hold the slot for a
            // moment, so terminate and drop until the drop goes through.
            #expect(await eventually(timeout: .seconds(20)) {
                try? await terminateRelayBackends(db)
                return (try? await db.query("SELECT pg_drop_replication_slot($1)", [.text(ctx.slotName)])) != nil
            })
            await expectHalt(relay, .slotMissing, mentioning: ["disappeared", ctx.slotName])
            #expect(try await slotConfirmedLSN(db, slot: ctx.slotName) == nil, "the relay must not recreate the slot")
        }
    }

    @Test("the slot advanced by someone else while the relay was away: halt loudly")
    func slotMovedAhead() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let relay = try RunningRelay.start(ctx) { $0.reconnectBackoff = .init(initial: .seconds(2), maximum: .seconds(4)) }
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertOutboxRows(db, transactions: 2, rowsPerTransaction: 2)
            _ = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 4)
            try await terminateRelayBackends(db)
            try await insertOutboxRows(db, transactions: 2, rowsPerTransaction: 2)  // rows that advancing would skip
            #expect(await eventually(timeout: .seconds(5)) {
                (try? await db.query("SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())", [.text(ctx.slotName)])) != nil
            })
            await expectHalt(relay, .slotMovedAhead, mentioning: ["ahead", ctx.slotName])
        }
    }

    @Test("a second relay on the same slot waits as a standby and takes over; nothing is lost")
    func standbyTakeover() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: db)
            let active = try RunningRelay.start(ctx)
            #expect(await eventually { active.service.health.current.state == .streaming })
            let standby = try RunningRelay.start(ctx) { $0.standbyPollInterval = .milliseconds(300) }
            #expect(await eventually { standby.service.health.current.state == .standby })
            #expect(!standby.service.health.isReady())
            try await insertOutboxRows(db, transactions: 50, rowsPerTransaction: 2)
            let started = ContinuousClock.now
            try await active.stop()
            #expect(await eventually { standby.service.health.current.state == .streaming })
            print("standby takeover after \(ContinuousClock.now - started)")
            try await insertOutboxRows(db, transactions: 50, rowsPerTransaction: 2)
            let committed = try await oracle.committed(on: db)
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: committed.count)
            let check = DeliveryCheck(committed: committed, messages: messages)
            #expect(check.isClean && check.duplicates == 0, "\(check)")
            try await standby.stop()
            try await oracle.drop(on: db)
        }
    }
}

/// Ends the relay's walsender connections (pg_terminate_backend), as a network cut would.
func terminateRelayBackends(_ db: PGConnection) async throws {
    try await db.query("""
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'outbox-relay' AND pid <> pg_backend_pid()
        """)
}

enum MigrationsForTests {
    static func apply(_ connection: PGConnection) async throws {
        try await Schema.MigrationRunner().run(on: connection)
    }
}
