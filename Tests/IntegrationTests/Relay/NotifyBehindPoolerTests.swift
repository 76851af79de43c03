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

    @Test("behind PgBouncer in transaction mode the relay says the doorbell is deaf, with the fix, and stays ready")
    func deafBehindTransactionPooler() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await NotifyTrigger.install(on: db)
            let pooler = try await PgBouncer.start(upstreamPort: ctx.postgres.port, poolMode: "transaction")
            defer { Task { await pooler.stop() } }
            let pooled = pooler.url(replacingPortOf: ctx.databaseURL, upstreamPort: ctx.postgres.port)
            let capture = LogCapture()
            let relay = try RunningRelay.start(ctx, capture: .notify, configure: { $0.databaseURL = pooled },
                                               logger: capture.logger(label: "relay-behind-pooler"))
            #expect(await eventually(timeout: .seconds(30)) { relay.service.health.current.detail.contains("doorbell deaf") },
                    "health: \(relay.service.health.current)")
            let warnings = capture.all.filter { $0.level == .warning && $0.message.contains(Self.deafWarning) }
            #expect(warnings.count == 1, "\(capture.all.map(\.message))")
            #expect(warnings.first?.metadata["fix"]?.contains("pool_mode = session") == true)
            #expect(relay.service.health.current.state == .streaming)
            #expect(relay.service.health.isReady(), "a deaf doorbell costs latency, not readiness")
            // Rows still come through, by the fallback timer.
            try await NotifyDoorbellTests.createTopicThroughRelay(db, relay)
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
