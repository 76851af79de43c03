import EphemeralServers
import Foundation
import KafkaClient
import PostgresClient
import Schema
import Synchronization
import Testing

/// Issue 32, item 2: a primary failover on PostgreSQL 17+ needs no operator. A real primary
/// and a real streaming standby (`pg_basebackup -R -C -S`, `hot_standby_feedback`,
/// `sync_replication_slots`, `dbname` in `primary_conninfo`), a relay with default settings
/// on a multi-host URL (`target_session_attrs=read-write`) restarted by a supervisor after
/// any exit, as systemd or Kubernetes would.
@Suite("Primary failover (PostgreSQL 17+)")
struct PrimaryFailoverTests {
    static let standbySlot = "standby1"
    static let slot = "relay_failover"

    @Test("kill the primary under writes and promote the standby: the relay continues from the synced slot; nothing lost, each key's order kept, never exit 78")
    func failoverUnderWrites() async throws {
        let primary = try await PostgresCluster.start()
        var standby: PostgresCluster?, broker: TansuBroker?, supervisor: RelaySupervisor?
        do {
            try requirePostgres(17, primary, for: "a primary failover with failover slots")
            let database = try await primary.createDatabase(prefix: "failover")
            try await MigrationRunner().run(on: try await PGConnection.connect(database.url))
            standby = try await primary.startStandby(physicalSlot: Self.standbySlot, syncDatabase: database.name)
            broker = try await TansuBroker.start()
            let topology = FailoverTopology(primary: primary, standby: standby!, database: database.name,
                                            bootstrapServers: broker!.bootstrapServers, slot: Self.slot)
            supervisor = topology.superviseRelay()
            try await run(topology, supervisor: supervisor!)
        } catch {
            print("--- failover test failed: \(error)\n--- primary log ---\n\(primary.logTail(maxBytes: 4_000))\n--- standby log ---\n\(standby?.logTail(maxBytes: 6_000) ?? "-")")
            await tearDown(supervisor, broker, standby, primary)
            throw error
        }
        await tearDown(supervisor, broker, standby, primary)
    }

    private func tearDown(_ supervisor: RelaySupervisor?, _ broker: TansuBroker?, _ standby: PostgresCluster?, _ primary: PostgresCluster) async {
        _ = await supervisor?.stop()
        await broker?.stop()
        await standby?.stop()
        await primary.stop()
    }

    private func run(_ topology: FailoverTopology, supervisor: RelaySupervisor) async throws {
        let primaryDB = try await PGConnection.connect(topology.primary.url(database: topology.database))

        // 1. Without synchronized_standby_slots the relay may run ahead of the standby: it
        //    says so in its log, in `status` and on /metrics.
        #expect(await eventually(timeout: .seconds(90)) { await topology.failoverReadyMetric() == 0 },
                "outbox_relay_slot_failover_ready never showed 0")
        #expect(topology.relayLogs().contains("the slot would not survive a primary failover"))
        let unready = try await topology.status()
        #expect(unready.contains("failover: not ready: synchronized_standby_slots does not name the physical slot of standby \(Self.standbySlot)"), "\(unready)")
        #expect(try await primaryDB.query("SELECT failover FROM pg_replication_slots WHERE slot_name = $1", [.text(Self.slot)]).single().bool("failover"))

        // 2. The operator names the standby's slot; at its next session the relay says ready.
        try await primaryDB.query("ALTER SYSTEM SET synchronized_standby_slots = '\(Self.standbySlot)'")
        try await primaryDB.query("SELECT pg_reload_conf()")
        supervisor.restartCurrent()
        #expect(await eventually(timeout: .seconds(90)) { await topology.failoverReadyMetric() == 1 },
                "outbox_relay_slot_failover_ready never showed 1")
        #expect(try await topology.status().contains("failover: ready"))

        // 3. Writes, one writer so that outbox_id order is commit order; it reconnects
        //    through the multi-host URL like an application would.
        let writing = Atomic<Bool>(true)
        let writer = Task { () -> Int in
            var connection: PGConnection?, failures = 0
            while writing.load(ordering: .relaxed) {
                do {
                    if connection == nil { connection = try await PGConnection.connect(topology.url) }
                    try await insertOutboxRows(connection!, transactions: 1, rowsPerTransaction: Int.random(in: 1...5), keys: 20)
                } catch {
                    connection = nil
                    failures += 1
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            return failures
        }
        let standbyDB = try await PGConnection.connect(topology.standby.url(database: topology.database))
        // The standby's copy of the slot is usable once synced and persistent (a copy stays
        // temporary until the primary's slot moves past where the standby began).
        #expect(await eventually(timeout: .seconds(120), every: .milliseconds(500)) {
            (try? await standbyDB.query("SELECT synced AND NOT temporary AS usable FROM pg_replication_slots WHERE slot_name = $1",
                                        [.text(Self.slot)]).rows.first?.bool("usable")) == true
        }, "the relay's slot never reached the standby")
        try await Task.sleep(for: .seconds(3))

        // 4. The primary dies under writes; the standby is promoted.
        try await topology.primary.kill()
        try await topology.standby.promote()
        try await Task.sleep(for: .seconds(4))
        writing.store(false, ordering: .relaxed)
        let writeFailures = await writer.value

        // 5. Everything the new primary has reaches Kafka, from the synced slot.
        let newPrimary = try await PGConnection.connect(topology.standby.url(database: topology.database))
        let end = try await newPrimary.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
        #expect(await eventually(timeout: .seconds(180), every: .milliseconds(500)) {
            (try? await slotConfirmedLSN(newPrimary, slot: Self.slot)).flatMap { $0 }.map { $0 >= end } == true
        }, "the relay never confirmed past the last write on the new primary")
        #expect(try await newPrimary.query("SELECT synced FROM pg_replication_slots WHERE slot_name = $1", [.text(Self.slot)]).single().bool("synced"),
                "the relay is not reading the slot synced from the old primary")
        let committed = try await FailoverTopology.committedRows(newPrimary)
        let messages = try await readMessages(bootstrapServers: topology.bootstrapServers, topics: ["BOOK_SAVE"], count: .max,
                                              timeout: .seconds(120), idle: .seconds(5))
        let check = DeliveryCheck(committed: committed, messages: messages)
        let statuses = await supervisor.stop()
        print("primary failover on PostgreSQL \(topology.primary.majorVersion): \(check); writer errors \(writeFailures); relay exits \(statuses)")
        #expect(check.committed > 0)
        // unexpected: a record of a transaction the new primary never had.
        #expect(check.isClean, "\(check)")
        #expect(!statuses.contains(78), "the relay halted for an operator: exits \(statuses)\n\(topology.relayLogs().suffix(4_000))")
        #expect(statuses.last == 0, "the final SIGTERM: exits \(statuses)")
    }
}
