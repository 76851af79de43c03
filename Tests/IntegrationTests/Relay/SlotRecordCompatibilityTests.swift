import PostgresClient
import Testing

/// A relay upgraded before `outbox-relay migrate` ran: the slot record has no delivered
/// snapshot columns (migration 0008). The record writer falls back to the plain write, so
/// confirmations go on and nothing is lost; only `slot reset` loses the delivered snapshot.
@Suite("Slot record without migration 0008")
struct SlotRecordCompatibilityTests {
    @Test("without the delivered-snapshot columns the relay still records, confirms and delivers every row in order")
    func withoutMigration0008() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await db.query("""
                ALTER TABLE outbox_relay_slot DROP COLUMN delivered_snapshot, DROP COLUMN pending_snapshot, DROP COLUMN pending_lsn
                """)
            let oracle = try await CommitOrderOracle.create(on: db)
            let relay = try RunningRelay.start(ctx)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertOutboxRows(db, transactions: 20, rowsPerTransaction: 5, keys: 10)
            let end = try await db.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
            #expect(await eventually(timeout: .seconds(60)) {
                ((try? await slotConfirmedLSN(db, slot: ctx.slotName)) ?? nil).map { $0 >= end } == true
            }, "the slot is confirmed past every row: the record writes went on")
            let recorded = try await db.query("SELECT confirmed_lsn::text AS lsn FROM outbox_relay_slot WHERE slot_name = $1",
                                              [.text(ctx.slotName)]).single().lsn("lsn")
            #expect(recorded >= end, "the record moved with the confirmations")
            let (check, _) = try await checkDelivery(db, oracle: oracle, bootstrapServers: ctx.bootstrapServers)
            #expect(check.isClean && check.duplicates == 0, "\(check)")
            try await relay.stop()
            try await oracle.drop(on: db)
        }
    }
}
