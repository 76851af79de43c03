import Foundation
import PostgresClient
import Relay
import Testing

/// Issue 31 item 4: the lost-wake-up race of notify mode's doorbell. A READ COMMITTED writer
/// whose trigger read the flag clear, and which commits after the relay's read that
/// followed ringing in, rings nobody; the relay now waits for the transactions in progress
/// at ring-in before it sleeps, so such a row no longer waits for the fallback timer.
@Suite("Notify lost wake-up")
struct NotifyLostWakeUpTests {
    /// A fallback timer no test waits for: a row that waits for it fails the test.
    static let fallback = Duration.seconds(60)
    static let insertRow = "INSERT INTO outbox (topic, mq_key, type, payload) VALUES ('BOOK_SAVE', 'BOOK:1', 'BOOK_SAVE', '{}')"

    @Test("a READ COMMITTED writer that read the flag clear and commits after the read past ring-in is published without the fallback timer, a long transaction running beside it")
    func writerInProgressAtRingIn() async throws {
        try await withTestContext(dedicatedCluster: true) { ctx in
            let db = try await ctx.migrated()
            try await NotifyTrigger.install(on: db)
            // A first relay creates the topic (so the timed wait below excludes its creation)
            // and, stopping, clears the flag.
            let first = try RunningRelay.start(ctx, capture: .notify)
            #expect(await eventually { (try? await NotifyDoorbellTests.listening(db)) == true })
            try await NotifyDoorbellTests.createTopicThroughRelay(db, first)
            try await first.stop()
            #expect(try await NotifyDoorbellTests.listening(db) == false)

            // The writer inserts while the flag is clear: its trigger does not ring.
            let listener = try await ctx.connect()
            try await listener.listen("outbox_relay")
            let writer = try await ctx.connect()
            try await writer.query("BEGIN ISOLATION LEVEL READ COMMITTED")
            try await writer.query(Self.insertRow)

            // A long unrelated transaction in progress too: the relay must not wait for it
            // before it reads the writer's row.
            let long = try await ctx.connect()
            try await long.query("BEGIN")
            try await long.query("SELECT pg_current_xact_id()")

            // The relay starts, reads (the row is not committed), rings in, reads once more
            // and goes to sleep, all while the writer's transaction is open.
            let relay = try RunningRelay.start(ctx, capture: .notify) { $0.notifyFallbackInterval = Self.fallback }
            #expect(await eventually { relay.service.health.current.state == .streaming })
            #expect(await eventually { (try? await NotifyDoorbellTests.listening(db)) == true })
            try await Task.sleep(for: .milliseconds(500))
            #expect(relay.service.health.published == 0)

            try await writer.query("COMMIT")
            let committed = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(15), every: .milliseconds(10)) { relay.service.health.published == 1 },
                    "the row waited for the fallback timer (\(Self.fallback))")
            let waited = ContinuousClock.now - committed
            #expect(waited < .seconds(10), "published \(waited) after the commit")
            #expect(try await NotifyDoorbellTests.notifications(listener, quiet: .milliseconds(100)) == 0, "the writer did not ring")
            try await long.query("ROLLBACK")
            try await relay.stop()
        }
    }

    @Test("a long transaction in progress at ring-in does not delay a rung doorbell")
    func longTransactionAtRingIn() async throws {
        try await withTestContext(dedicatedCluster: true) { ctx in
            let db = try await ctx.migrated()
            try await NotifyTrigger.install(on: db)
            let relay = try RunningRelay.start(ctx, capture: .notify) { $0.notifyFallbackInterval = Self.fallback }
            #expect(await eventually { (try? await NotifyDoorbellTests.listening(db)) == true })
            // An unrelated transaction with an id, open from before the next ring-in to the
            // end. (Not from the start: creating the slot waits for running transactions.)
            let long = try await ctx.connect()
            try await long.query("BEGIN")
            try await long.query("SELECT pg_current_xact_id()")
            // The relay wakes for this row, reads, and rings in again with it in progress.
            try await NotifyDoorbellTests.createTopicThroughRelay(db, relay)
            #expect(await eventually { (try? await NotifyDoorbellTests.listening(db)) == true })
            try await Task.sleep(for: .milliseconds(300))
            try await insertOutboxRows(db, transactions: 1, rowsPerTransaction: 1)
            #expect(await eventually(timeout: .seconds(15), every: .milliseconds(10)) { relay.service.health.published == 2 },
                    "a notification ends the wait for the long transaction")
            try await long.query("ROLLBACK")
            try await relay.stop()
        }
    }
}
