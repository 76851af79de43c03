import Foundation
import Relay
import RelayCore
import Synchronization
import Testing

/// Batched reads while behind (`CatchUpReads`, `catch-up-read-size`), wired into stream
/// capture: the socket's receive low-water mark goes up while the relay is behind and back
/// down once it keeps pace, and a stop while batching still ends the COPY promptly.
@Suite("Stream relay catching up")
struct CatchUpReadsWiringTests {
    @Test("behind: reads are batched; a stop while batching ends at once; caught up: per message again; every row in per-key order")
    func batchedWhileBehind() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: db)
            // First start creates the slot; then a backlog behind it.
            let first = try RunningRelay.start(ctx)
            #expect(await eventually { first.service.health.current.state == .streaming })
            try await first.stop()
            // Small transactions: a stop waits for the one in hand (≤ 20 broker round trips
            // below), while libpq's buffer holds thousands of rows that a stop must not wait for.
            try await insertOutboxRows(db, transactions: 1_000, rowsPerTransaction: 20, keys: 40)

            // Every read counts as a crumb here (in production only reads below 2 KiB do),
            // so being behind is enough. One row in flight at a time keeps the relay seconds
            // behind for the whole stop below.
            let overruns = OverrunRecorder()
            let slow = try RunningRelay.start(ctx, configure: {
                $0.catchUpReads = CatchUpReads(smallRead: .max)
                $0.maxInFlightEvents = 1
                $0.drainTimeout = .seconds(5)
            }, onStopOverrun: overruns.report)
            #expect(await eventually(every: .milliseconds(10)) { slow.service.health.readingInBatches },
                    "the relay never batched its reads while seconds behind")

            // Ending the COPY waits for the server's small replies on the same socket: with
            // the low-water mark still raised they would never wake libpq, and only the
            // watchdog (at drain-timeout) would end the stop. A stop also stops handling
            // libpq's buffered messages at the next transaction boundary, rather than
            // publishing thousands of them one broker round trip at a time first.
            let stopStarted = ContinuousClock.now
            slow.service.stop()
            let done = Mutex(false)
            let waiter = Task { _ = try? await slow.task.value; done.withLock { $0 = true } }
            #expect(await eventually(timeout: .seconds(8), every: .milliseconds(20)) { done.withLock { $0 } },
                    "the stop did not end within 8 s")
            // Under a loaded CI run the 20 round trips took up to ~1 s; handling the buffered
            // rows first runs into drain-timeout (5 s).
            #expect(ContinuousClock.now - stopStarted < .seconds(4), "the stop took \(ContinuousClock.now - stopStarted)")
            #expect(overruns.count == 0, "the stop watchdog fired")
            if done.withLock({ $0 }) { try await slow.task.value }
            waiter.cancel()

            // A relay with the defaults catches up, then reads per message again.
            let normal = try RunningRelay.start(ctx)
            let committed = try await oracle.committed(on: db)
            #expect(committed.count == 20_000)
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"],
                                                  count: committed.count, timeout: .seconds(120), idle: .seconds(5))
            let check = DeliveryCheck(committed: committed, messages: messages)
            #expect(check.isClean, "\(check)")
            #expect(check.duplicates == 0, "a graceful stop confirms what it published")
            #expect(await eventually { !normal.service.health.readingInBatches })
            try await normal.stop()
            try await oracle.drop(on: db)
        }
    }
}
