import EphemeralServers
import Foundation
import PostgresClient
import Testing

/// `--log-format json|text` as an operator runs it: every line a JSON object with the
/// documented fields, and no password (DSN, SASL, librdkafka secret) in any line of either
/// format, even at debug level. Also `--http-host` with an IPv6 address.
@Suite("outbox-relay logs and the HTTP address")
struct LogFormatCLITests {
    static let dsnPassword = "dsn-Pa55-\(UUID().uuidString.prefix(8))"
    static let saslPassword = "sasl-Pa55-\(UUID().uuidString.prefix(8))"
    static let keyPassword = "key-Pa55-\(UUID().uuidString.prefix(8))"

    /// Runs the relay at debug level with secrets in every place they can be given, carries
    /// some rows, stops it with SIGTERM, and returns the exit status and the log.
    func runWithSecrets(_ ctx: TestContext, format: String, extra: [String] = [],
                        get: @escaping (Int, String) async -> (status: Int, body: String)? = { port, path in
                            (await LoopbackHTTP.get(port: port, path: path)).map { ($0.status, $0.body) }
                        }) async throws -> (status: Int32?, output: String) {
        let db = try await ctx.migrated()
        let url = ctx.databaseURL.replacingOccurrences(of: "postgres://postgres@", with: "postgres://postgres:\(Self.dsnPassword)@")
        var environment = ProcessInfo.processInfo.environment
        environment["OUTBOX_RELAY_KAFKA_SASL_USERNAME"] = "relay"
        environment["OUTBOX_RELAY_KAFKA_SASL_PASSWORD"] = Self.saslPassword
        let port = freeLoopbackPort()
        let log = NSTemporaryDirectory() + "relay-\(ctx.databaseName)-log-\(format).log"
        let relay = try ChildProcess([try relayBinary(), "run", "--database-url", url, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                                      "--slot", ctx.slotName, "--http-port", String(port), "--log-level", "debug", "--log-format", format,
                                      "--set", "kafka-properties=ssl.key.password=\(Self.keyPassword)",
                                      "--set", "spill-dir=\(NSTemporaryDirectory())"] + extra,
                                     outputPath: log, environment: environment)
        let ready = await eventually { await get(port, "/readyz")?.status == 200 }
        #expect(ready, "\(relay.output.suffix(2_000))")
        try await insertOutboxRows(db, transactions: 5, rowsPerTransaction: 4)
        #expect(await eventually {
            await get(port, "/metrics").flatMap { LoopbackHTTP.sample("outbox_relay_events_published_total", in: $0.body) } == 20
        })
        let status = await relay.terminate(timeout: .seconds(30))
        return (status, relay.output)
    }

    func assertNoSecret(_ output: String) {
        for secret in [Self.dsnPassword, Self.saslPassword, Self.keyPassword] {
            let leaks = output.split(separator: "\n").filter { $0.contains(secret) }
            #expect(leaks.isEmpty, "a secret reached the log:\n\(leaks.prefix(3).joined(separator: "\n"))")
        }
    }

    @Test("--log-format json: every line is one object with time, level, component, message and metadata; no secret; SIGTERM exits 0")
    func jsonLogs() async throws {
        try await withTestContext { ctx in
            let (status, output) = try await runWithSecrets(ctx, format: "json")
            #expect(status == 0, "\(output.suffix(2_000))")
            let lines = output.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(lines.count > 10, "expected debug-level lines, got \(lines.count)")
            var levels: Set<String> = [], components: Set<String> = []
            for line in lines {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    Issue.record("not a JSON object: \(line.prefix(300))")
                    continue
                }
                #expect(Set(object.keys) == ["time", "level", "component", "message", "metadata"], "\(line.prefix(300))")
                #expect((object["time"] as? String)?.hasSuffix("Z") == true)
                #expect(object["metadata"] is [String: Any], "\(line.prefix(300))")
                if let level = object["level"] as? String { levels.insert(level) }
                if let component = object["component"] as? String { components.insert(component) }
            }
            #expect(levels.isSubset(of: ["trace", "debug", "info", "notice", "warning", "error", "critical"]) && levels.contains("info"), "\(levels)")
            #expect(components.contains("outbox-relay"), "\(components)")
            let start = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .first { $0["message"] as? String == "starting relay" }
            let config = (start?["metadata"] as? [String: Any])?["config"] as? [String: String]
            #expect(config?["log-format"] == "json (command-line flag)", "the resolved configuration is an object: \(String(describing: config))")
            #expect(config?["kafka-sasl-password"] == "<redacted> (environment variable OUTBOX_RELAY_KAFKA_SASL_PASSWORD)")
            assertNoSecret(output)
        }
    }

    @Test("--log-format text at debug level: one line per event, no secret in any line; --http-host ::1 serves the endpoints over IPv6")
    func textLogsAndIPv6() async throws {
        try await withTestContext { ctx in
            // Readiness and metrics are read over IPv6 ([::1]:port) only.
            let (status, output) = try await runWithSecrets(ctx, format: "text", extra: ["--http-host", "::1"]) { port, path in
                await LoopbackHTTP.get(port: port, path: path, ipv6: true).map { ($0.status, $0.body) }
            }
            #expect(status == 0, "\(output.suffix(2_000))")
            // Every line is an event of its own, opening with its time (the configuration
            // was a block of dozens of lines; libpq's errors span several).
            let continued = output.split(separator: "\n").filter { !$0.hasPrefix("20") }
            #expect(continued.isEmpty, "\(continued.prefix(5))")
            let started = output.split(separator: "\n").first { $0.contains("starting relay") } ?? ""
            #expect(started.contains("database-url = postgres") && started.contains("(command-line flag)")
                    && started.contains("kafka-sasl-password = <redacted> (environment variable OUTBOX_RELAY_KAFKA_SASL_PASSWORD)")
                    && started.contains("every other setting at its default"), "\(started)")
            assertNoSecret(output)
        }
    }
}

