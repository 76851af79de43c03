import EphemeralServers
import Foundation
import KafkaClient
import PGOutput
import PostgresClient
import Relay
import Testing

@Suite("Notify capture mode")
struct NotifyRelayTests {
    @Test("the same workload through stream and notify modes gives identical Kafka contents")
    func identicalToStream() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await NotifyTrigger.install(on: db, channel: "outbox_relay")
            try await NotifyTrigger.install(on: db, channel: "outbox_relay")  // idempotent
            #expect(try await NotifyTrigger.isInstalled(on: db))
            let secondBroker = try await TansuBroker.start()
            defer { secondBroker.stop() }
            let stream = try RunningRelay.start(ctx, slot: ctx.slotName + "_s")
            let notify = try RunningRelay.start(ctx, slot: ctx.slotName + "_n", capture: .notify, bootstrapServers: secondBroker.bootstrapServers)
            #expect(await eventually { stream.service.health.current.state == .streaming && notify.service.health.current.state == .streaming })

            try await insertOutboxRows(db, transactions: 300, rowsPerTransaction: 1, keys: 20)
            try await insertOutboxRows(db, transactions: 2, rowsPerTransaction: 3_000, keys: 20)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask { try await insertOutboxRows(try await ctx.connect(), transactions: 40, rowsPerTransaction: 5, keys: 20) }
                }
                try await group.waitForAll()
            }
            let total = 300 + 6_000 + 600
            let a = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: total)
            let b = try await readMessages(bootstrapServers: secondBroker.bootstrapServers, topics: ["BOOK_SAVE"], count: total)
            #expect(a.count == total && b.count == total)
            func summary(_ messages: [KafkaMessage]) -> [String: [String]] {
                // key -> ordered "id|value" list: ids, keys, values and per-key order at once.
                Dictionary(grouping: messages, by: \.keyString).mapValues { $0.map { "\($0.headerString("outbox-id") ?? "")|\($0.valueString)" } }
            }
            #expect(summary(a) == summary(b))
            try await stream.stop()
            try await notify.stop()
        }
    }

    @Test("killing the LISTEN connection mid-run loses nothing")
    func listenerKilled() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await NotifyTrigger.install(on: db)
            let relay = try RunningRelay.start(ctx, capture: .notify)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertOutboxRows(db, transactions: 100, rowsPerTransaction: 2)
            let killed = try await db.query("""
                SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = 'outbox-relay-listen'
                """).single().int("n")
            #expect(killed == 1)
            try await insertOutboxRows(db, transactions: 100, rowsPerTransaction: 2)
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 400, timeout: .seconds(60))
            #expect(Set(messages.compactMap { $0.headerString("outbox-id") }).count == 400)
            try await relay.stop()
            // Stream mode needs no trigger: removing it is idempotent too.
            try await NotifyTrigger.remove(on: db)
            try await NotifyTrigger.remove(on: db)
            #expect(try await !NotifyTrigger.isInstalled(on: db))
        }
    }

    /// Notify mode waits for the slot record after every read that found rows (the slot is
    /// its read cursor), and its stop records the last acknowledged position. Both waits
    /// were a flat 5 s: with the record's row locked (a stuck writer, a lock queue), a stop
    /// with a 2 s drain-timeout took ~10 s, and only the watchdog (exit 75) kept its bound.
    /// Now a stop cuts the wait at its deadline, as stream mode's final status does: the
    /// stop returns by itself at ~1.9 s here. The teardown after the wait has what is left
    /// of the reserve (0.2 s at this drain-timeout); on a loaded CI host it once took 1 s,
    /// and the watchdog then ended the stop at 2 s, as designed, so the bound checked on
    /// the stop's own return leaves room for that.
    @Test("a stop while the slot record cannot be written stops waiting for it at the stop's deadline; a restart publishes what was not confirmed")
    func stopWithSlotRecordLocked() async throws {
        try await withTestContext(dedicatedCluster: true) { ctx in
            let db = try await ctx.migrated()
            try await NotifyTrigger.install(on: db)
            let overruns = OverrunRecorder()
            let relay = try RunningRelay.start(ctx, capture: .notify, configure: { $0.drainTimeout = .seconds(2) },
                                               onStopOverrun: overruns.report)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertOutboxRows(db, transactions: 1, rowsPerTransaction: 5)
            let firstEnd = try await db.query("SELECT pg_current_wal_lsn()::text AS lsn").single().string("lsn")
            // The first five are recorded and confirmed before the lock is taken.
            #expect(await eventually {
                (try? await db.query("SELECT confirmed_flush_lsn >= $2::pg_lsn AS done FROM pg_replication_slots WHERE slot_name = $1",
                                     [.text(ctx.slotName), .text(firstEnd)]).single().bool("done")) == true
            })
            // The recorder's UPDATE of this row now waits behind the lock.
            let locker = try await ctx.connect()
            try await locker.query("BEGIN")
            try await locker.query("SELECT 1 FROM outbox_relay_slot WHERE slot_name = $1 FOR UPDATE", [.text(ctx.slotName)])
            try await insertOutboxRows(db, transactions: 1, rowsPerTransaction: 5)
            #expect(await eventually { relay.service.health.published == 10 })
            let stopped = ContinuousClock.now
            relay.service.stop()
            try await relay.task.value
            let took = ContinuousClock.now - stopped
            #expect(took < .seconds(5), "the stop took \(took) against a 2 s drain-timeout (watchdog reports: \(overruns.count))")
            try await locker.query("ROLLBACK")
            // The second five were never confirmed: the next start publishes them again.
            let again = try RunningRelay.start(ctx, capture: .notify)
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 15, timeout: .seconds(30))
            #expect(Set(messages.compactMap { $0.headerString("outbox-id") }).count == 10)
            try await again.stop()
        }
    }
}
