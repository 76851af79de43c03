import EphemeralServers
import Foundation
import PostgresClient
@testable import Relay
import Schema
import Testing

/// Issue 32, item 4: on PostgreSQL 15 and 16 (or 17+ without slot sync) a failover loses the
/// slot. The relay refuses with what happened, a promotion, not "dropped by someone", and
/// `slot reset --confirm` on the new primary is the tested recovery. It re-sends only what
/// may be missing: rows the record's delivered snapshot (migration 0008) does not see. Runs
/// on every version (the standby does not sync slots).
@Suite("Slot lost in a failover (PostgreSQL 15/16 procedure)")
struct SlotLostInFailoverTests {
    static let slot = "relay_lost"

    /// INIT rows the old slot delivered (before the record's delivered snapshot caught up)
    /// still INIT on the new primary; `nil` when the record knows no delivered snapshot.
    static func undeliveredRows(_ db: PGConnection) async throws -> Int? {
        guard let snapshot = try await db.query("SELECT delivered_snapshot::text AS s FROM outbox_relay_slot WHERE slot_name = $1", [.text(slot)])
            .rows.first?.optionalString("s") else { return nil }
        return try await db.query("SELECT count(*) AS n FROM outbox WHERE \(SlotDelivered.mayBeMissingPredicate(snapshot: snapshot))").single().int("n")
    }

    @Test("after a promotion the relay halts naming the failover; slot reset on the new primary re-sends in order only what may be missing; nothing lost")
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
            // Another team's topic: no consumer writes back, so its rows stay INIT for good.
            try await insertOutboxRows(old, transactions: 10, rowsPerTransaction: 2, keys: 5, keyPrefix: "ORDER:", topic: "ORDER_PLACED")
            let written = try await old.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
            #expect(await eventually(timeout: .seconds(60)) { ((try? await slotConfirmedLSN(old, slot: Self.slot)) ?? nil).map { $0 >= written } == true })
            // The record's delivered snapshot follows the confirmations by two record writes
            // (at idle up to ten status intervals apart).
            #expect(await eventually(timeout: .seconds(90)) { (try? await Self.undeliveredRows(old)) == 0 },
                    "the record's delivered snapshot never caught up with the delivered rows")
            let primaryEnd = try await old.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
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
            // The 220 rows the old slot delivered stay out; the 200 the new primary took in go.
            #expect(reset.output.contains("200 INIT rows committed before it re-sent, 220 already delivered by the old slot left out"),
                    "slot reset: \(reset.output)")
            supervisor = topology.superviseRelay(name: "after-reset")
            try await insertOutboxRows(newPrimary, transactions: 20, rowsPerTransaction: 5, keys: 15)
            let end = try await newPrimary.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
            #expect(await eventually(timeout: .seconds(120)) { ((try? await slotConfirmedLSN(newPrimary, slot: Self.slot)) ?? nil).map { $0 >= end } == true })
            let committed = try await FailoverTopology.committedRows(newPrimary)
            let messages = try await readMessages(bootstrapServers: broker!.bootstrapServers, topics: ["BOOK_SAVE", "ORDER_PLACED"], count: .max,
                                                  timeout: .seconds(120), idle: .seconds(5))
            let check = DeliveryCheck(committed: committed, messages: messages)
            let after = await supervisor!.stop()
            supervisor = nil
            print("slot lost in a failover on PostgreSQL \(primary.majorVersion), then slot reset: \(check); reset: \(reset.output.split(separator: "\n").last ?? "")")
            #expect(check.isClean, "\(check)")
            // Before migration 0008 the reset re-sent every INIT row: 220 duplicates here.
            #expect(check.duplicates == 0, "\(check)")
            #expect(after.last == 0 && !after.contains(78), "relay exits after the reset: \(after)")
        } catch {
            print("--- lost-slot test failed: \(error)\n--- standby log ---\n\(standby?.logTail(maxBytes: 4_000) ?? "-")")
            _ = await supervisor?.stop(); await broker?.stop(); await standby?.stop(); await primary.stop()
            throw error
        }
        _ = await supervisor?.stop(); await broker?.stop(); await standby?.stop(); await primary.stop()
    }
}
