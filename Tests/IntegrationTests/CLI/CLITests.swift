import EphemeralServers
import Foundation
import PostgresClient
import Testing

/// The `outbox-relay` binary as an operator runs it: HTTP endpoints, SIGTERM with the
/// endpoints on, `status` as a monitoring check, configuration precedence, redaction and
/// start-up errors.
@Suite("outbox-relay CLI")
struct CLITests {
    static let password = "s3cr3t-Pa55word"

    /// The test database's URL with a password in it (the test cluster trusts loopback, so
    /// it is accepted and ignored): it must never show up in output, logs or metrics.
    func urlWithPassword(_ ctx: TestContext) -> String {
        ctx.databaseURL.replacingOccurrences(of: "postgres://postgres@", with: "postgres://postgres:\(Self.password)@")
    }

    /// commit→capture tells the database's share of commit→ack; the broker's share came only
    /// from a debug build. librdkafka measures it: each produce request's round trip.
    @Test("/metrics shows the produce round trip to each broker (median and p99), from librdkafka's statistics")
    func brokerRoundTrip() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let port = freeLoopbackPort()
            // Statistics every 200 ms instead of the default 15 s, so the test need not wait.
            let relay = try startRelayProcess(ctx, extra: ["--kafka-properties", "statistics.interval.ms=200"], logName: "cli-broker-rtt", httpPort: port)
            #expect(await eventually { (await LoopbackHTTP.get(port: port, path: "/readyz"))?.status == 200 },
                    "readyz never turned 200: \(relay.output.suffix(2_000))")
            try await insertOutboxRows(db, transactions: 10, rowsPerTransaction: 10)
            var series: [Substring] = []
            #expect(await eventually(timeout: .seconds(15)) {
                series = ((await LoopbackHTTP.get(port: port, path: "/metrics"))?.body ?? "").split(separator: "\n")
                    .filter { $0.hasPrefix("outbox_relay_kafka_broker_rtt_seconds{") }
                return series.count == 2
            }, "one broker, two quantiles: \(series)")
            for quantile in ["0.5", "0.99"] {
                let line = try #require(series.first { $0.contains("quantile=\"\(quantile)\"") }, "\(series)")
                #expect(line.contains("slot=\"\(ctx.slotName)\"") && line.contains("broker=\"") && !line.contains("bootstrap"), "\(line)")
                let seconds = try #require(line.split(separator: " ").last.flatMap { Double($0) }, "\(line)")
                #expect(seconds > 0 && seconds < 1, "\(line)")
            }
            #expect(await relay.terminate(timeout: .seconds(30)) == 0, "\(relay.output.suffix(2_000))")
        }
    }

    @Test("run serves /healthz, /readyz and /metrics; SIGTERM with the endpoints on drains and exits 0; no secret leaks")
    func endpointsAndGracefulStop() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let port = freeLoopbackPort()
            let relay = try startRelayProcess(ctx, extra: ["--database-url", urlWithPassword(ctx), "--set", "sweeper=true"],
                                              logName: "cli-endpoints", httpPort: port)
            #expect(await eventually { (await LoopbackHTTP.get(port: port, path: "/readyz"))?.status == 200 },
                    "readyz never turned 200: \(relay.output.suffix(2_000))")
            let health = await LoopbackHTTP.get(port: port, path: "/healthz")
            #expect(health?.status == 200)
            #expect(health?.body.hasPrefix("streaming") == true, "\(health?.body ?? "-")")

            try await insertOutboxRows(db, transactions: 20, rowsPerTransaction: 10)
            #expect(await eventually {
                (await LoopbackHTTP.get(port: port, path: "/metrics")).flatMap { LoopbackHTTP.sample("outbox_relay_events_published_total", in: $0.body) } == 200
            })
            // The slot-lag gauge is sampled every 5 s.
            #expect(await eventually(timeout: .seconds(15)) {
                (await LoopbackHTTP.get(port: port, path: "/metrics"))?.body.contains("outbox_relay_slot_lag_bytes{") == true
            })
            let metrics = try #require(await LoopbackHTTP.get(port: port, path: "/metrics")).body
            for name in ["outbox_relay_commit_to_ack_seconds_bucket", "outbox_relay_commit_to_ack_seconds_count",
                         "outbox_relay_commit_to_capture_seconds_bucket",
                         "outbox_relay_events_in_flight", "outbox_relay_confirmed_flush_lsn_high", "outbox_relay_confirmed_flush_lsn_low",
                         "outbox_relay_streaming", "outbox_relay_catch_up_reads"] {
                #expect(metrics.contains(name), "metric \(name) missing")
            }
            #expect(LoopbackHTTP.sample("outbox_relay_commit_to_ack_seconds_count", in: metrics) == 200)
            // One sample per transaction, in the same fine buckets as commit→ack.
            #expect(LoopbackHTTP.sample("outbox_relay_commit_to_capture_seconds_count", in: metrics) == 20)
            #expect(metrics.split(separator: "\n").contains { $0.hasPrefix("outbox_relay_commit_to_capture_seconds_bucket{") && $0.contains("le=\"0.003\"") })
            #expect(LoopbackHTTP.sample("outbox_relay_events_in_flight", in: metrics) == 0)
            #expect(LoopbackHTTP.sample("outbox_relay_streaming", in: metrics) == 1)
            #expect(!metrics.contains(Self.password))

            let status = await relay.terminate(timeout: .seconds(30))
            #expect(status == 0, "exit after SIGTERM: \(status.map(String.init) ?? "none, still running after 30 s")\n\(relay.output.suffix(2_000))")
            #expect(!relay.output.contains(Self.password), "the password reached the log")
            #expect(!isLoopbackPortOpen(port), "the HTTP endpoints outlived the process")
            // A graceful stop confirms everything it published: the slot has nothing left to
            // re-send (a restart would publish no duplicates).
            let pending = try await db.query("""
                SELECT count(*) AS n FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
                    'proto_version', '1', 'publication_names', 'outbox_pub')
                """, [.text(ctx.slotName)]).single().int("n")
            #expect(pending == 0, "\(pending) changes left unconfirmed after a graceful stop")
        }
    }

    @Test("relay and consume as processes carry bookings end to end; consume serves /metrics and stops on SIGTERM")
    func relayAndConsumeProcesses() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            // The slot starts with the relay: rows written before it are the sweeper's job.
            let relayPort = freeLoopbackPort()
            let relay = try startRelayProcess(ctx, logName: "cli-e2e-relay", httpPort: relayPort)
            #expect(await eventually { (await LoopbackHTTP.get(port: relayPort, path: "/readyz"))?.status == 200 })
            _ = try await bookSeats(db, count: 30)
            let port = freeLoopbackPort()
            let log = NSTemporaryDirectory() + "consume-\(ctx.databaseName).log"
            let consume = try ChildProcess([try relayBinary(), "consume", "--database-url", urlWithPassword(ctx),
                                            "--kafka-bootstrap-servers", ctx.bootstrapServers, "--http-port", String(port),
                                            "--log-level", "notice", "--set", "kafka-properties=allow.auto.create.topics=true"],
                                           outputPath: log)
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 30
            }, "\(consume.output.suffix(2_000))")
            #expect(try await count(db, "SELECT count(*) AS n FROM booking_record") == 30)
            // The counters move when a batch is settled, just after its database commit.
            var metrics = ""
            #expect(await eventually(timeout: .seconds(10)) {
                metrics = (await LoopbackHTTP.get(port: port, path: "/metrics"))?.body ?? ""
                return LoopbackHTTP.sample("outbox_consumer_applied_total", in: metrics) == 30
            }, "\(metrics.prefix(2_000))")
            #expect((await LoopbackHTTP.get(port: port, path: "/healthz"))?.status == 200)
            let consumeStatus = await consume.terminate(timeout: .seconds(30))
            #expect(consumeStatus == 0, "consume after SIGTERM: \(consume.output.suffix(1_500))")
            #expect(!consume.output.contains(Self.password))
            #expect(await relay.terminate() == 0)
        }
    }

    /// Held offsets hold every later batch: `consume` must not look ready meanwhile.
    @Test("consume reports a dead-letter topic that refuses sends on /readyz (503, with the reason) and outbox_consumer_ready 0")
    func consumeStallOnReadyz() async throws {
        try await withTestContext { ctx in
            _ = try await ctx.migrated()
            let port = freeLoopbackPort()
            let consume = try ChildProcess([try relayBinary(), "consume", "--database-url", urlWithPassword(ctx),
                                            "--kafka-bootstrap-servers", ctx.bootstrapServers, "--http-port", String(port),
                                            "--log-level", "notice", "--set", "consumer-dead-letter-topic=not a topic!",
                                            "--set", "kafka-properties=allow.auto.create.topics=true"],
                                           outputPath: NSTemporaryDirectory() + "consume-stall-\(ctx.databaseName).log")
            #expect(await eventually { (await LoopbackHTTP.get(port: port, path: "/readyz"))?.status == 200 }, "\(consume.output.suffix(1_500))")
            try await ConsumerTests.sendRaw(ctx, [("BOOK:x", "{not json", [("outbox-id", "999"), ("outbox-type", "BOOK_SAVE")])])
            var ready: (status: Int, body: String)?
            #expect(await eventually(timeout: .seconds(60)) {
                ready = await LoopbackHTTP.get(port: port, path: "/readyz").map { ($0.status, $0.body) }
                return ready?.status == 503
            }, "\(ready.map { "\($0.status) \($0.body)" } ?? "no answer"): \(consume.output.suffix(1_500))")
            #expect(ready?.body.contains("the dead-letter topic not a topic! refused") == true, "\(ready?.body ?? "")")
            let metrics = (await LoopbackHTTP.get(port: port, path: "/metrics"))?.body ?? ""
            #expect(metrics.contains("outbox_consumer_ready 0"), "\(metrics.prefix(2_000))")
            #expect(!(ready?.body.contains(Self.password) ?? false))
            // A stop with the dead letter still refused fails rather than committing past it.
            let status = await consume.terminate(timeout: .seconds(40))
            #expect(status != nil && status != 0, "exit \(status.map(String.init) ?? "none"): \(consume.output.suffix(1_500))")
        }
    }

    @Test("an HTTP port already in use is a clear start-up error, and the relay does not linger")
    func httpPortInUse() async throws {
        try await withTestContext { ctx in
            _ = try await ctx.migrated()
            let first = try startRelayProcess(ctx, logName: "cli-port-a")
            let port = freeLoopbackPort()
            let holder = try startRelayProcess(ctx, extra: ["--slot", ctx.slotName + "_b"], logName: "cli-port-holder", httpPort: port)
            #expect(await eventually { (await LoopbackHTTP.get(port: port, path: "/healthz")) != nil })
            let second = try startRelayProcess(ctx, extra: ["--slot", ctx.slotName + "_c"], logName: "cli-port-b", httpPort: port)
            let status = await second.waitForExit(timeout: .seconds(60))
            #expect(status != nil && status != 0, "a relay that cannot serve its endpoints must exit non-zero")
            #expect(second.output.contains("cannot serve /metrics"), "\(second.output.suffix(1_500))")
            #expect(second.output.contains("http-port"), "the error names the setting")
            for process in [first, holder] { #expect(await process.terminate() == 0) }
        }
    }

    @Test("status reports the slot and the outbox, and exits 2 when a threshold is crossed")
    func statusCheck() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])
            try await insertOutboxRows(db, transactions: 1, rowsPerTransaction: 3)
            let base = ["status", "--database-url", urlWithPassword(ctx), "--kafka-bootstrap-servers", ctx.bootstrapServers,
                        "--slot", ctx.slotName]

            let healthy = try await runCLI(base + ["--max-dead", "0", "--max-slot-lag", "1GiB"])
            #expect(healthy.status == 0, "\(healthy.output)")
            #expect(healthy.output.contains("slot \(ctx.slotName): confirmed"))
            #expect(healthy.output.contains("INIT 3"))
            #expect(healthy.output.contains("OK"))

            try await db.query("UPDATE outbox SET status = 'DEAD' WHERE outbox_id = (SELECT min(outbox_id) FROM outbox)")
            let breached = try await runCLI(base + ["--max-dead", "0", "--max-oldest-init", "1h"])
            #expect(breached.status == 2, "\(breached.output)")
            #expect(breached.output.contains("CHECK FAILED: 1 DEAD rows > 0"), "\(breached.output)")

            let missingSlot = try await runCLI(["status", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                                                "--slot", "no_such_slot"])
            #expect(missingSlot.status == 2)
            #expect(missingSlot.output.contains("slot no_such_slot does not exist"))
            for result in [healthy, breached] { #expect(!result.output.contains(Self.password)) }
        }
    }

    @Test("flags beat OUTBOX_RELAY_* variables, which beat the config file; --print-config redacts secrets")
    func configurationPrecedence() async throws {
        let file = NSTemporaryDirectory() + "outbox-relay-\(UUID().uuidString).conf"
        try """
            # operator config
            slot = from_file
            max-in-flight = 111
            kafka-sasl-password = \(Self.password)-file
            status-interval = 3s
            """.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var environment = ProcessInfo.processInfo.environment
        environment["OUTBOX_RELAY_MAX_IN_FLIGHT"] = "222"
        environment["OUTBOX_RELAY_STATUS_INTERVAL"] = "2s"
        environment["OUTBOX_RELAY_DATABASE_URL"] = "postgres://relay:\(Self.password)@db.example:5432/app?sslmode=verify-full"
        let result = try await runCLI(["run", "--config", file, "--set", "status-interval=1500ms", "--print-config"], environment: environment)
        #expect(result.status == 0, "\(result.output)")
        let lines = result.output.split(separator: "\n").map(String.init)
        func line(_ name: String) -> String { lines.first { $0.hasPrefix(name + " = ") } ?? "(no \(name) line)" }
        #expect(line("slot").contains("from_file"))
        #expect(line("max-in-flight").contains("222"))
        #expect(line("status-interval").contains("1500ms"))
        #expect(line("capture").contains("stream") && line("capture").contains("default"))
        #expect(line("database-url").contains("db.example"), "host and port stay visible: \(line("database-url"))")
        #expect(!result.output.contains(Self.password), "a secret was printed:\n\(result.output)")
    }

    @Test("bad settings and unreachable servers fail before anything runs, naming the problem and the fix")
    func startupErrors() async throws {
        let badValue = try await runCLI(["run", "--database-url", "postgres://x@127.0.0.1:1/db", "--set", "max-in-flight=lots"])
        #expect(badValue.status != 0)
        #expect(badValue.output.contains("max-in-flight"), "\(badValue.output)")

        var environment = ProcessInfo.processInfo.environment
        environment["OUTBOX_RELAY_MAX_INFLIGHT"] = "5"  // a typo must not fall back to the default
        let typo = try await runCLI(["run", "--database-url", "postgres://x@127.0.0.1:1/db", "--print-config"], environment: environment)
        #expect(typo.status != 0)
        #expect(typo.output.contains("OUTBOX_RELAY_MAX_INFLIGHT"), "\(typo.output)")

        let missingURL = try await runCLI(["run", "--http-port", "0"], environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OUTBOX_RELAY_") })
        #expect(missingURL.status != 0)
        #expect(missingURL.output.contains("database-url is not set"), "\(missingURL.output)")

        let port = freeLoopbackPort()
        let unreachable = try await runCLI(["run", "--database-url", "postgres://relay:\(Self.password)@127.0.0.1:\(port)/app", "--http-port", "0"])
        #expect(unreachable.status != 0)
        #expect(unreachable.output.contains("127.0.0.1"), "\(unreachable.output)")
        #expect(unreachable.output.contains(String(port)), "\(unreachable.output)")
        #expect(unreachable.output.contains("Fix"), "\(unreachable.output)")
        #expect(!unreachable.output.contains(Self.password), "\(unreachable.output)")
    }

    @Test("run refuses --kafka-properties that switch off a delivery guarantee, naming the property, before connecting")
    func guaranteeBearingKafkaPropertyRefused() async throws {
        // Nothing listens on this port: a refusal that came from connecting would name it.
        let port = freeLoopbackPort()
        let result = try await runCLI(["run", "--database-url", "postgres://relay@127.0.0.1:\(port)/app", "--http-port", "0",
                                       "--kafka-properties", "linger.ms=2,enable.idempotence=false"])
        #expect(result.status != 0, "\(result.output)")
        #expect(result.output.contains("enable.idempotence=false"), "\(result.output)")
        #expect(result.output.contains("enable.idempotence=true"), "the fix names the required value: \(result.output)")
        #expect(!result.output.contains(String(port)), "it tried to connect first: \(result.output)")
    }
}

extension CLITests {
    @Test("slot reset refuses without --confirm; with it, it recreates the slot, records it and re-sends the INIT rows before it")
    func slotResetCommand() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await insertOutboxRows(db, transactions: 2, rowsPerTransaction: 3)  // 6 INIT rows, no slot yet
            let common = ["slot", "reset", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers, "--slot", ctx.slotName]
            let refused = try await runCLI(common)
            #expect(refused.status == 64 && refused.output.contains("--confirm"), "\(refused.output)")
            #expect(!refused.output.contains("Usage:"), "the refusal alone, without an unrelated usage line: \(refused.output)")
            #expect(try await slotConfirmedLSN(db, slot: ctx.slotName) == nil, "nothing done without --confirm")
            let done = try await runCLI(common + ["--confirm"])
            #expect(done.status == 0, "\(done.output)")
            #expect(done.output.contains("6 INIT rows"), "\(done.output)")
            let slot = try await slotConfirmedLSN(db, slot: ctx.slotName)
            let recorded = try await db.query("SELECT confirmed_lsn::text AS lsn, last_change FROM outbox_relay_slot WHERE slot_name = $1",
                                              [.text(ctx.slotName)]).single()
            let recordedLSN = try recorded.lsn("lsn"), change = try recorded.string("last_change")
            #expect(slot != nil && slot == recordedLSN && change == "reset")
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 6)
            #expect(messages.count == 6)
            #expect(!done.output.contains("password"), "no secret in the output")
        }
    }
}

/// Runs `outbox-relay` to completion (at most 60 s) and returns its exit status and output.
func runCLI(_ arguments: [String], environment: [String: String]? = nil) async throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "outbox-relay-cli-\(UUID().uuidString).log"
    defer { try? FileManager.default.removeItem(atPath: log) }
    let process = try ChildProcess([try relayBinary()] + arguments, outputPath: log, environment: environment)
    guard let status = await process.waitForExit(timeout: .seconds(60)) else {
        process.signal(SIGKILL)
        _ = await process.waitForExit()
        throw CheckerError("outbox-relay \(arguments.first ?? "") did not finish within 60 s:\n\(process.output.suffix(2_000))")
    }
    return (status, process.output)
}
