@testable import Consumers
import EphemeralServers
import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import Relay
import RelayCore
import Schema
import Synchronization
import Testing

/// Fault injection: each scenario runs load, breaks something, and the checker verifies
/// the guarantees of docs/architecture.md afterwards. Serialized, so timing-based faults are
/// not distorted by other scenarios competing for the 2 cores.
@Suite("Fault injection", .serialized)
struct FaultSuiteTests {
    /// Scenario context on the shared cluster, or on a dedicated one for server-level faults.
    func scenario(settings: [String: String]? = nil, _ body: (TestContext, PGConnection, CommitOrderOracle) async throws -> Void) async throws {
        if let settings {
            let cluster = try await PostgresCluster.start(extraSettings: settings.merging(["logical_decoding_work_mem": "64kB"]) { $1 })
            let database = try await cluster.createDatabase()
            let broker = try await TansuBroker.start()
            let ctx = TestContext(postgres: cluster, databaseName: database.name, databaseURL: database.url, broker: broker)
            do {
                let db = try await ctx.migrated()
                let oracle = try await CommitOrderOracle.create(on: db)
                try await body(ctx, db, oracle)
            } catch {
                print("--- postgres log ---\n\(cluster.logTail(maxBytes: 4000))")
                await broker.stop(); await cluster.stop(); throw error
            }
            await broker.stop()
            await cluster.stop()
        } else {
            try await withTestContext { ctx in
                let db = try await ctx.migrated()
                let oracle = try await CommitOrderOracle.create(on: db)
                try await body(ctx, db, oracle)
                try await oracle.drop(on: db)
            }
        }
    }

    @Test("relay process: kill -9 at random points under load, 20 times (OUTBOX_FAULT_KILLS overrides)")
    func killNine() async throws {
        try await scenario { ctx, db, oracle in
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])
            let consumer = try RunningConsumer.start(ctx)
            let lag = SlotLagSampler(url: ctx.databaseURL, slot: ctx.slotName)
            // Long runs (OUTBOX_FAULT_KILLS=1000 lasts ~15 min) write more slowly, so the
            // checker's read-back of every row stays within what the in-memory broker serves.
            let load = LoadGenerator(url: ctx.databaseURL, pauseMicros: Fault.relayKills > 50 ? 30_000 : 2_000)
            var worstRecovery = Duration.zero
            var killedWhilePublishing = 0
            for round in 0..<Fault.relayKills {
                let port = freeLoopbackPort()
                let relay = try startRelayProcess(ctx, logName: "k\(round)", httpPort: port)
                let started = ContinuousClock.now
                // Recovery = start to the first broker acknowledgement of this process; the
                // kill then lands at a random point while it publishes (acknowledged rows
                // whose LSN is not yet confirmed are the ones a crash sends again).
                // 30 s: in CI's parallel phase a start has taken 15 s; the figure that
                // matters, the worst recovery, is reported either way.
                if await eventually(timeout: .seconds(30), every: .milliseconds(10), {
                    ((await LoopbackHTTP.get(port: port, path: "/metrics")).flatMap { LoopbackHTTP.sample("outbox_relay_events_published_total", in: $0.body) } ?? 0) > 0
                }) {
                    killedWhilePublishing += 1
                }
                worstRecovery = max(worstRecovery, ContinuousClock.now - started)
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...900)))
                relay.signal(SIGKILL)
                _ = await relay.waitForExit()
            }
            await load.stop()
            #expect(killedWhilePublishing == Fault.relayKills, "only \(killedWhilePublishing) relays published before their kill")
            let final = try startRelayProcess(ctx, logName: "final")
            _ = try await checkScenario("relay kill -9 x\(Fault.relayKills)", db: db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                        consumers: true, recovery: worstRecovery, worstSlotLag: await lag.stop())
            #expect(await final.terminate() == 0, "exit after SIGTERM: \(final.output.suffix(1_500))")
            try await consumer.stop()
        }
    }

    @Test("relay process: SIGTERM under load drains, exits 0, and a restart sends no duplicates")
    func sigterm() async throws {
        try await scenario { ctx, db, oracle in
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])
            let load = LoadGenerator(url: ctx.databaseURL, pauseMicros: 500)
            for round in 0..<3 {
                let port = freeLoopbackPort()
                let relay = try startRelayProcess(ctx, logName: "t\(round)", httpPort: port)
                // Streaming first: in CI's loaded PostgreSQL 18 phase a process 1.5 s old had not
                // started yet (no output) and died of the SIGTERM itself, exit 143. A stop
                // before the start is not the drain this scenario is about.
                #expect(await eventually(timeout: .seconds(30), every: .milliseconds(20)) {
                    (await LoopbackHTTP.get(port: port, path: "/readyz"))?.status == 200
                }, "\(relay.output.suffix(1_500))")
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...1_200)))
                let status = await relay.terminate()
                #expect(status == 0, "exit \(status.map(String.init) ?? "none: still running 60 s after SIGTERM"): \(relay.output.suffix(1_500))")
            }
            await load.stop()
            let final = try startRelayProcess(ctx, logName: "final")
            let report = try await checkScenario("relay SIGTERM x3", db: db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                                 consumers: false, recovery: nil, worstSlotLag: 0)
            #expect(report.check.duplicates == 0, "graceful stops must not cause redelivery")
            #expect(await final.terminate() == 0, "exit after SIGTERM: \(final.output.suffix(1_500))")
        }
    }

    @Test("relay process: SIGSTOP longer than wal_sender_timeout, then SIGCONT")
    func sigstop() async throws {
        try await scenario(settings: ["wal_sender_timeout": "2s"]) { ctx, db, oracle in
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])
            let load = LoadGenerator(url: ctx.databaseURL)
            let relay = try startRelayProcess(ctx, logName: "stop")
            try await Task.sleep(for: .seconds(1))
            relay.signal(SIGSTOP)
            try await Task.sleep(for: .seconds(5))
            relay.signal(SIGCONT)
            let resumed = ContinuousClock.now
            #expect(await waitUntilStreaming(db, ctx.slotName, timeout: .seconds(30)))
            let recovery = ContinuousClock.now - resumed
            try await Task.sleep(for: .seconds(1))
            await load.stop()
            _ = try await checkScenario("relay SIGSTOP 5 s > wal_sender_timeout 2 s", db: db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                        consumers: false, recovery: recovery, worstSlotLag: 0)
            #expect(await relay.terminate() == 0, "exit after SIGTERM: \(relay.output.suffix(1_500))")
        }
    }

    @Test("broker frozen with SIGSTOP for 30 s under load (600 rows/s), then resumed; default sweeper and consumers: re-sends ≤ 1%, no error logged")
    func brokerFrozen() async throws {
        try await scenario { ctx, db, oracle in
            // Requests in flight at the freeze time out within it (socket.timeout.ms, 60 s by
            // default), as they do in a longer freeze: librdkafka then logs at LOG_ERR.
            let logs = LogCapture(level: .warning)
            let socketTimeout = "10000"
            let relay = try RunningRelay.start(ctx, sweeper: SweeperPolicy(), configure: { $0.kafka.properties["socket.timeout.ms"] = socketTimeout },
                                               logger: logs.logger(label: "relay-under-test"))
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let consumer = try RunningConsumer.start(ctx, configure: { $0.kafka.properties["socket.timeout.ms"] = socketTimeout }, logs: logs)
            let lag = SlotLagSampler(url: ctx.databaseURL, slot: ctx.slotName)
            let load = LoadGenerator(url: ctx.databaseURL, pauseMicros: 5_000)
            try await Task.sleep(for: .seconds(1))
            ctx.broker!.freeze()
            try await Task.sleep(for: .seconds(Fault.scaled(30, soak: 120)))
            ctx.broker!.thaw()
            let thawed = ContinuousClock.now
            let health = relay.service.health
            let publishedAtThaw = health.published
            while health.published <= publishedAtThaw, ContinuousClock.now - thawed < .seconds(60) {
                try await Task.sleep(for: .milliseconds(20))
            }
            let recovery = ContinuousClock.now - thawed
            try await Task.sleep(for: .seconds(2))
            await load.stop()
            let report = try await checkScenario("broker frozen \(Fault.scaled(30, soak: 120)) s", db: db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                                 consumers: true, recovery: recovery, worstSlotLag: await lag.stop())
            #expect(report.resent <= report.check.committed / 100, "sweeper re-sent \(report.resent) of \(report.check.committed)")
            // A frozen broker heals by itself: warnings, but nothing that pages an operator
            // (librdkafka's LOG_ERR "request timed out: disconnect" lines were errors once).
            let errors = logs.all.filter { $0.level >= .error }
            #expect(errors.isEmpty, "\(errors.map { "\($0.level) \($0.message)" })")
            try await relay.stop()
            try await consumer.stop()
        }
    }

    @Test("relay stopped for 25 s under load (200 rows/s), then started again; default sweeper and consumers: re-sends ≤ 1%")
    func relayOutage() async throws {
        try await scenario { ctx, db, oracle in
            var relay = try RunningRelay.start(ctx, sweeper: SweeperPolicy())
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let consumer = try RunningConsumer.start(ctx)
            let load = LoadGenerator(url: ctx.databaseURL, pauseMicros: 15_000)
            try await Task.sleep(for: .seconds(3))
            try await relay.stop()
            try await Task.sleep(for: .seconds(Fault.scaled(25, soak: 120)))
            relay = try RunningRelay.start(ctx, sweeper: SweeperPolicy())
            let restarted = ContinuousClock.now
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let recovery = ContinuousClock.now - restarted
            // Long enough for the sweeper's rounds after the restart (interval 20 s, grace 10 s).
            try await Task.sleep(for: .seconds(35))
            await load.stop()
            let report = try await checkScenario("relay outage \(Fault.scaled(25, soak: 120)) s", db: db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                                 consumers: true, recovery: recovery, worstSlotLag: 0)
            #expect(report.resent <= report.check.committed / 100, "sweeper re-sent \(report.resent) of \(report.check.committed)")
            try await relay.stop()
            try await consumer.stop()
        }
    }

    @Test("PostgreSQL immediate-mode restart under load")
    func postgresRestart() async throws {
        try await scenario(settings: [:]) { ctx, db, oracle in
            let relay = try RunningRelay.start(ctx) { $0.reconnectBackoff = .init(initial: .milliseconds(100), maximum: .seconds(1)) }
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let load = LoadGenerator(url: ctx.databaseURL)
            try await Task.sleep(for: .seconds(1))
            try await ctx.postgres.restart(mode: "immediate")
            let restarted = ContinuousClock.now
            _ = await eventually(timeout: .seconds(5)) { relay.service.health.current.state != .streaming }
            #expect(await eventually(timeout: .seconds(30)) { relay.service.health.current.state == .streaming })
            let recovery = ContinuousClock.now - restarted
            try await Task.sleep(for: .seconds(1))
            await load.stop()
            let fresh = try await ctx.connect()
            let report = try await checkScenario("postgres immediate restart", db: fresh, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                                 consumers: false, recovery: recovery, worstSlotLag: 0)
            // What was acknowledged is not replayed (issue 32 item 3; before: 3,600 records for 2,407 rows).
            #expect(duplicateShare(report) <= 0.03, "\(report)")
            try await relay.stop()
        }
    }

    /// A reconnect inside one process re-sends at most what was in flight (issue 32 item 3):
    /// a small window makes that bound tight (before: 255 duplicates for 5,151 rows).
    @Test("the relay's backend terminated with pg_terminate_backend, three times under load: at most the in-flight window (50) re-sent each time; one error line")
    func terminateBackend() async throws {
        try await scenario { ctx, db, oracle in
            let window = 50
            let logs = LogCapture(level: .warning)
            let relay = try RunningRelay.start(ctx, configure: { $0.maxInFlightEvents = window }, logger: logs.logger(label: "relay-under-test"))
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let load = LoadGenerator(url: ctx.databaseURL)
            var worst = Duration.zero
            for _ in 0..<3 {
                try await Task.sleep(for: .milliseconds(700))
                try await terminateRelayBackends(db)
                let cut = ContinuousClock.now
                _ = await waitUntilStreaming(db, ctx.slotName, timeout: .seconds(30))
                worst = max(worst, ContinuousClock.now - cut)
            }
            await load.stop()
            let report = try await checkScenario("pg_terminate_backend x3 (window \(window))", db: db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                                 consumers: false, recovery: worst, worstSlotLag: 0)
            _ = duplicateShare(report)
            #expect(report.check.duplicates <= 3 * window, "\(report)")
            try await relay.stop()
            // One outage (no session lasted 30 s between the cuts), one error line: each
            // reconnect logged at error paged an operator for every retry of a restart.
            let ended = logs.lines("capture session ended; resuming from the slot")
            #expect(ended.count >= 3, "\(ended.map(\.metadata))")
            #expect(ended.filter { $0.level >= .error }.count == 1, "\(ended.map { "\($0.level) \($0.metadata["attempt"] ?? "")" })")
        }
    }

    @Test("consumers: a member joins and another leaves under load; effects stay exactly once")
    func consumerRebalance() async throws {
        try await scenario { ctx, db, oracle in
            let relay = try RunningRelay.start(ctx)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let a = try RunningConsumer.start(ctx, batchSize: 32)
            let load = LoadGenerator(url: ctx.databaseURL)
            try await Task.sleep(for: .seconds(3))
            let b = try RunningConsumer.start(ctx, batchSize: 32)
            // `a` leaves once the group has settled with both members, as the old member of a
            // rolling deploy does. Tansu 0.6.0's coordinator cannot take a leader leaving in
            // the middle of a sync: it keeps naming the gone leader in every JoinGroup answer,
            // and the member left waits for that leader's assignment forever (endless
            // REBALANCE_IN_PROGRESS, seen here in 1 run of 7). Apache Kafka's coordinator
            // replaces such a leader, so that case is Tansu's, not the consumers'.
            #expect(await eventually(timeout: .seconds(60)) {
                a.service.progress.assignedPartitions > 0 && b.service.progress.assignedPartitions > 0
            }, "both members hold partitions")
            try await Task.sleep(for: .seconds(3))
            try await a.stop()
            try await Task.sleep(for: .seconds(3))
            await load.stop()
            _ = try await checkScenario("consumer rebalance under load", db: db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                        consumers: true, recovery: nil, worstSlotLag: 0)
            try await b.stop()
            try await relay.stop()
        }
    }

    @Test("consumers: killed between the database commit and the offset commit, under load")
    func consumerCrash() async throws {
        try await scenario { ctx, db, oracle in
            let relay = try RunningRelay.start(ctx)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let load = LoadGenerator(url: ctx.databaseURL)
            for _ in 0..<3 {
                let batches = Atomic<Int>(0)
                let crashing = try RunningConsumer.start(ctx, batchSize: 16) {
                    if batches.add(1, ordering: .relaxed).newValue >= 5 { throw SimulatedCrash() }
                }
                _ = try? await crashing.task.value
            }
            let survivor = try RunningConsumer.start(ctx, batchSize: 16)
            try await Task.sleep(for: .seconds(2))
            await load.stop()
            _ = try await checkScenario("consumer killed after DB commit x3", db: db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                        consumers: true, recovery: nil, worstSlotLag: 0)
            #expect(survivor.service.totals.duplicates > 0, "redelivered batches must show up as absorbed duplicates")
            try await survivor.stop()
            try await relay.stop()
        }
    }
}

/// True while a walsender serves the slot (the relay is streaming).
func isStreaming(_ db: PGConnection, _ slot: String) async throws -> Bool {
    try await db.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", [.text(slot)]).rows.first?.bool("active") ?? false
}

/// Polls until a walsender serves the slot; returns whether it did within `timeout`.
func waitUntilStreaming(_ db: PGConnection, _ slot: String, timeout: Duration) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await isStreaming(db, slot)) == true { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return false
}
