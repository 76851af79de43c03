import EphemeralServers
import Foundation
import PostgresClient
import Relay
import Testing

/// Issue 32, item 3: a PostgreSQL crash replays nothing that was acknowledged. After a
/// crash the slot falls back to its last checkpointed position and PostgreSQL sends
/// everything since again; the relay skips what it knows was acknowledged (its slot
/// record, and in a running process its own acknowledgements), so duplicates are bounded by
/// what was acknowledged in the last moments before the crash, or by what was in flight.
extension FaultSuiteTests {
    /// Small transactions at a few hundred rows/s and, with `streamed`, a large one (over the
    /// test cluster's 64 kB logical_decoding_work_mem, so PostgreSQL streams it before
    /// commit) every two seconds or so: the crash lands among plain and streamed
    /// transactions alike. Skipping is per transaction, so a transaction in flight at the
    /// crash (or, with the record alone, acknowledged after its last write) is sent again
    /// whole: one large one is ~250 rows, which the record-only scenario's 3% could not
    /// absorb twice, so that one runs small transactions only.
    func crashLoad(_ ctx: TestContext, streamed: Bool) -> [LoadGenerator] {
        [LoadGenerator(url: ctx.databaseURL, rowsPerTransaction: 1...5, pauseMicros: 10_000)]
            + (streamed ? [LoadGenerator(url: ctx.databaseURL, rowsPerTransaction: 240...260, pauseMicros: 2_000_000)] : [])
    }

    /// The duplicates' share of committed rows, printed like the other fault figures.
    func duplicateShare(_ report: ScenarioReport) -> Double {
        let share = Double(report.check.duplicates) / Double(max(report.check.committed, 1))
        print("FAULT \(report.name): duplicates \(report.check.duplicates) for \(report.check.committed) rows = \(String(format: "%.2f", share * 100))%")
        return share
    }

    @Test("PostgreSQL killed (pg_ctl -m immediate) 5 times under writes, the relay running: duplicates ≤ 3%",
          arguments: [CaptureMode.stream, .notify])
    func postgresCrashesRelayRunning(capture: CaptureMode) async throws {
        try await scenario(settings: [:]) { ctx, db, oracle in
            let relay = try RunningRelay.start(ctx, capture: capture) { $0.reconnectBackoff = .init(initial: .milliseconds(100), maximum: .seconds(1)) }
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let load = crashLoad(ctx, streamed: true)
            var worst = Duration.zero
            for _ in 0..<5 {
                try await Task.sleep(for: .seconds(6))
                try await ctx.postgres.restart(mode: "immediate")
                let restarted = ContinuousClock.now
                _ = await eventually(timeout: .seconds(5)) { relay.service.health.current.state != .streaming }
                #expect(await eventually(timeout: .seconds(60)) { relay.service.health.current.state == .streaming },
                        "the relay did not stream again after the crash: \(relay.service.health.current)")
                worst = max(worst, ContinuousClock.now - restarted)
            }
            try await Task.sleep(for: .seconds(2))
            for generator in load { await generator.stop() }
            let fresh = try await ctx.connect()
            let report = try await checkScenario("postgres crash x5 (\(capture) capture, relay running)", db: fresh, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                                 consumers: false, recovery: worst, worstSlotLag: 0)
            #expect(duplicateShare(report) <= 0.03, "\(report)")
            // Invariant 8: the slot fell behind its record at every crash; that is accepted.
            #expect(relay.service.health.current.state == .streaming)
            try await relay.stop()
        }
    }

    @Test("PostgreSQL and the relay process killed together 5 times under writes: the slot record alone keeps duplicates ≤ 3%")
    func postgresCrashesWithRelay() async throws {
        try await scenario(settings: [:]) { ctx, db, oracle in
            // The slot before the load: rows older than a new slot are a first start's job.
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])
            let load = crashLoad(ctx, streamed: false)
            for round in 0..<5 {
                let relay = try startRelayProcess(ctx, logName: "crash\(round)")
                try await Task.sleep(for: .seconds(7))
                // A host failure: the relay and PostgreSQL go down at once, so the next relay
                // process knows only what the slot record says.
                relay.signal(SIGKILL)
                try await ctx.postgres.restart(mode: "immediate")
                _ = await relay.waitForExit()
                #expect(!relay.output.contains("relay halted"), "round \(round): \(relay.output.suffix(1_500))")
            }
            let final = try startRelayProcess(ctx, logName: "final")
            try await Task.sleep(for: .seconds(2))
            for generator in load { await generator.stop() }
            let fresh = try await ctx.connect()
            let report = try await checkScenario("postgres + relay crash x5 (slot record only)", db: fresh, oracle: oracle,
                                                 bootstrapServers: ctx.bootstrapServers, consumers: false, recovery: nil, worstSlotLag: 0)
            #expect(duplicateShare(report) <= 0.03, "\(report)")
            #expect(final.output.contains("skipped the transactions PostgreSQL sent again"), "final relay: \(final.output.suffix(1_500))")
            #expect(await final.terminate() == 0, "exit after SIGTERM: \(final.output.suffix(1_500))")
            // Invariant 8 after five crashes: the slot never got ahead of its record.
            let recorded = try await fresh.query("SELECT confirmed_lsn::text AS lsn FROM outbox_relay_slot WHERE slot_name = $1",
                                                 [.text(ctx.slotName)]).single().lsn("lsn")
            #expect(try await slotConfirmedLSN(fresh, slot: ctx.slotName)! <= recorded)
        }
    }
}
