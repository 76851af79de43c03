import EphemeralServers
import Foundation
import PostgresClient
import Schema
import Testing

/// Issue 32, item 4: on PostgreSQL 15 and 16 (or 17+ without slot sync) a failover loses the
/// slot. The relay refuses with what happened, a promotion, not "dropped by someone", and
/// `slot reset --confirm` on the new primary is the tested recovery. Runs on every version
/// (the standby does not sync slots).
@Suite("Slot lost in a failover (PostgreSQL 15/16 procedure)")
struct SlotLostInFailoverTests {
    static let slot = "relay_lost"

    @Test("after a promotion the relay halts naming the failover; slot reset on the new primary re-sends in order; nothing lost")
    func slotLostThenReset() async throws {
        let primary = try await PostgresCluster.start()
        var standby: PostgresCluster?, broker: TansuBroker?, supervisor: RelaySupervisor?
        do {
            let database = try await primary.createDatabase(prefix: "lost")
            try await MigrationRunner().run(on: try await PGConnection.connect(database.url))
            standby = try await primary.startStandby(physicalSlot: "standby1", syncDatabase: database.name, syncSlots: false)
            broker = try await TansuBroker.start()
            let topology = FailoverTopology(primary: primary, standby: standby!, database: database.name,
                                            bootstrapServers: broker!.bootstrapServers, slot: Self.slot)
            supervisor = topology.superviseRelay()

            // Rows the relay streams from the old primary; the standby has all of them when
            // the primary dies (this test is about the slot, not about lost transactions).
            let old = try await PGConnection.connect(database.url)
            #expect(await eventually(timeout: .seconds(60)) { (try? await slotConfirmedLSN(old, slot: Self.slot)) != nil })
            try await insertOutboxRows(old, transactions: 40, rowsPerTransaction: 5, keys: 15)
            let primaryEnd = try await old.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
            #expect(await eventually(timeout: .seconds(60)) { ((try? await slotConfirmedLSN(old, slot: Self.slot)) ?? nil).map { $0 >= primaryEnd } == true })
            let standbyDB = try await PGConnection.connect(standby!.url(database: database.name))
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await standbyDB.query("SELECT pg_last_wal_replay_lsn()::text AS lsn").single().lsn("lsn")).map { $0 >= primaryEnd } == true
            })
            try await primary.kill()
            try await standby!.promote()

            // Rows on the new primary, which no slot there has seen.
            let newPrimary = try await PGConnection.connect(standby!.url(database: database.name))
            try await insertOutboxRows(newPrimary, transactions: 40, rowsPerTransaction: 5, keys: 15)

            // The relay refuses (78), naming the promotion; its supervisor keeps trying.
            #expect(await eventually(timeout: .seconds(120)) { supervisor!.exitStatuses.contains(78) }, "the relay never halted")
            let statuses = await supervisor!.stop()
            supervisor = nil
            let logs = topology.relayLogs()
            for words in ["is on timeline 2", "promoted from a standby", "slot reset --slot \(Self.slot)"] {
                #expect(logs.contains(words), "\(words) missing from the relay's refusal (exits \(statuses)):\n\(logs.suffix(3_000))")
            }
            #expect(!logs.contains("dropped by someone"), "the refusal blames someone for a failover")

            // The documented recovery, on the new primary.
            let reset = try await runTool([try relayBinary(), "slot", "reset", "--confirm", "--database-url", topology.url,
                                           "--kafka-bootstrap-servers", broker!.bootstrapServers, "--slot", Self.slot], timeout: .seconds(120))
            #expect(reset.status == 0, "slot reset: \(reset.output)")
            supervisor = topology.superviseRelay(name: "after-reset")
            try await insertOutboxRows(newPrimary, transactions: 20, rowsPerTransaction: 5, keys: 15)
            let end = try await newPrimary.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
            #expect(await eventually(timeout: .seconds(120)) { ((try? await slotConfirmedLSN(newPrimary, slot: Self.slot)) ?? nil).map { $0 >= end } == true })
            let committed = try await FailoverTopology.committedRows(newPrimary)
            let messages = try await readMessages(bootstrapServers: broker!.bootstrapServers, topics: ["BOOK_SAVE"], count: .max,
                                                  timeout: .seconds(120), idle: .seconds(5))
            let check = DeliveryCheck(committed: committed, messages: messages)
            let after = await supervisor!.stop()
            supervisor = nil
            print("slot lost in a failover on PostgreSQL \(primary.majorVersion), then slot reset: \(check); reset: \(reset.output.split(separator: "\n").last ?? "")")
            #expect(check.isClean, "\(check)")
            #expect(after.last == 0 && !after.contains(78), "relay exits after the reset: \(after)")
        } catch {
            print("--- lost-slot test failed: \(error)\n--- standby log ---\n\(standby?.logTail(maxBytes: 4_000) ?? "-")")
            _ = await supervisor?.stop(); await broker?.stop(); await standby?.stop(); await primary.stop()
            throw error
        }
        _ = await supervisor?.stop(); await broker?.stop(); await standby?.stop(); await primary.stop()
    }
}
