import EphemeralServers
import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import RelayCore
import Testing

/// The ops kit under deploy/, each piece checked by the tool that will consume it:
/// promtool for the alert rules, promtool's PromQL parser for the dashboard's queries, the
/// real /metrics of a running relay and consumer for every metric name either of them uses,
/// systemd-analyze for the units, and the real binary for the example configuration.
@Suite("deploy/ ops kit")
struct DeployKitTests {
    static let rules = DeployKit.path("deploy/prometheus/outbox-relay.rules.yml")
    static let ruleTests = DeployKit.path("deploy/prometheus/outbox-relay.rules.test.yml")
    static let dashboard = DeployKit.path("deploy/grafana/outbox-relay.json")
    static let config = DeployKit.path("deploy/config/outbox-relay.conf")

    @Test("promtool check rules accepts the alert rules")
    func rulesCheck() async throws {
        let result = try await DeployKit.run([try DeployKit.tool("promtool", package: "prometheus"), "check", "rules", Self.rules])
        #expect(result.status == 0 && result.output.contains("SUCCESS"), "\(result.output)")
    }

    @Test("promtool test rules passes, and the tests cover every alert both firing and not firing")
    func rulesUnitTests() async throws {
        let result = try await DeployKit.run([try DeployKit.tool("promtool", package: "prometheus"), "test", "rules", Self.ruleTests])
        #expect(result.status == 0 && result.output.contains("SUCCESS"), "\(result.output)")

        let alerts = DeployKit.matches(of: #"- alert: (\w+)"#, in: try String(contentsOfFile: Self.rules, encoding: .utf8))
        #expect(alerts.count == 7, "\(alerts)")
        let tests = try String(contentsOfFile: Self.ruleTests, encoding: .utf8)
        let quiet = Set(DeployKit.matches(of: #"alertname: (\w+)\n\s+exp_alerts: \[\]"#, in: tests))
        let firing = Set(DeployKit.matches(of: #"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels"#, in: tests))
        for alert in alerts {
            #expect(firing.contains(alert), "no promtool test expects \(alert) to fire")
            #expect(quiet.contains(alert), "no promtool test expects \(alert) to stay quiet")
        }
    }

    @Test("every dashboard query is valid PromQL (parsed by promtool) and every panel uses the dashboard's data source")
    func dashboardQueriesParse() async throws {
        let (queries, panels) = try DeployKit.dashboardQueries(Self.dashboard)
        #expect(queries.count >= 20, "\(queries.count) queries")
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(ids.count == panels.count && Set(ids).count == ids.count, "every panel needs a unique id")
        for panel in panels where panel["type"] as? String != "row" {
            let source = (panel["datasource"] as? [String: Any])?["uid"] as? String
            #expect(source == "${datasource}", "panel \(panel["title"] ?? "?") does not use the datasource variable")
        }
        // Grafana's variables replaced by what they expand to, then each query checked as the
        // expression of a recording rule.
        var file = "groups:\n  - name: dashboard\n    rules:\n"
        for (index, query) in queries.enumerated() {
            let expanded = query.replacingOccurrences(of: "$__rate_interval", with: "5m")
                .replacingOccurrences(of: "$consumer_job", with: ".*").replacingOccurrences(of: "$job", with: ".*")
                .replacingOccurrences(of: "$slot", with: ".*")
            #expect(!expanded.contains("$"), "an unknown variable in \(query)")
            file += "      - record: dashboard_query_\(index)\n        expr: '\(expanded.replacingOccurrences(of: "'", with: "''"))'\n"
        }
        let path = NSTemporaryDirectory() + "dashboard-queries-\(UUID().uuidString).yml"
        try file.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try await DeployKit.run([try DeployKit.tool("promtool", package: "prometheus"), "check", "rules", path])
        #expect(result.status == 0 && result.output.contains("SUCCESS: \(queries.count) rules found"), "\(result.output)")
    }

    @Test("every metric name in the alert rules and the dashboard is served on /metrics by a running relay and consumer")
    func namesMatchRealMetrics() async throws {
        let used = Set(try [Self.rules, Self.ruleTests, Self.dashboard].flatMap {
            DeployKit.matches(of: #"\b(outbox_(?:relay|consumer)_[a-z0-9_]+)"#, in: try String(contentsOfFile: $0, encoding: .utf8))
        })
        #expect(used.count >= 20, "\(used.sorted())")
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let relayPort = freeLoopbackPort(), consumerPort = freeLoopbackPort()
            // Statistics every 500 ms, not 15 s: the broker round-trip series exists once a
            // window saw a produce request.
            let relay = try startRelayProcess(ctx, extra: ["--set", "sweeper=true", "--kafka-properties", "statistics.interval.ms=500"],
                                              logName: "deploy-names", httpPort: relayPort)
            #expect(await eventually { (await LoopbackHTTP.get(port: relayPort, path: "/readyz"))?.status == 200 }, "\(relay.output.suffix(2_000))")
            _ = try await bookSeats(db, count: 5)
            // A poison message, so the consumer's dead-letter series exists.
            let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers),
                                             logger: Logger(label: "deploy-test"), onDelivery: { _ in })
            _ = try await producer.send(topic: "BOOK_SAVE", key: Array("BOOK:x".utf8), value: Array("{not json".utf8),
                                        headers: [("outbox-type", Array("BOOK_SAVE".utf8))])
            await producer.close()
            let consume = try ChildProcess([try relayBinary(), "consume", "--database-url", ctx.databaseURL,
                                            "--kafka-bootstrap-servers", ctx.bootstrapServers, "--http-port", String(consumerPort),
                                            "--log-level", "notice", "--set", "kafka-properties=allow.auto.create.topics=true"],
                                           outputPath: NSTemporaryDirectory() + "deploy-consume-\(ctx.databaseName).log")
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 5
            }, "\(consume.output.suffix(2_000))")
            #expect(await eventually(timeout: .seconds(30)) {
                LoopbackHTTP.sample("outbox_consumer_dead_letters_total", in: (await LoopbackHTTP.get(port: consumerPort, path: "/metrics"))?.body ?? "") == 1
            })
            // The slot-lag gauge is sampled every 5 s; the broker round trip follows a window
            // with produce requests.
            #expect(await eventually(timeout: .seconds(15)) {
                let body = (await LoopbackHTTP.get(port: relayPort, path: "/metrics"))?.body ?? ""
                return body.contains("outbox_relay_slot_lag_bytes{") && body.contains("outbox_relay_kafka_broker_rtt_seconds{")
            })
            let relayMetrics = try #require(await LoopbackHTTP.get(port: relayPort, path: "/metrics")).body
            let consumerMetrics = try #require(await LoopbackHTTP.get(port: consumerPort, path: "/metrics")).body
            let served = DeployKit.sampleNames(relayMetrics).union(DeployKit.sampleNames(consumerMetrics))
            let missing = used.subtracting(served)
            #expect(missing.isEmpty, "used under deploy/ but not on /metrics: \(missing.sorted())\nserved: \(served.sorted())")

            // Readiness and build info as the alerts and the dashboard read them.
            #expect(relayMetrics.contains("outbox_relay_ready{slot=\"\(ctx.slotName)\"} 1"), "\(relayMetrics)")
            #expect(consumerMetrics.contains("outbox_consumer_ready 1"), "\(consumerMetrics)")
            #expect(relayMetrics.contains("outbox_relay_build_info{version=\""), "\(relayMetrics)")
            // Per outbox table, from the start at 0 (here the one default table).
            for name in ["outbox_relay_sweeper_resends_total", "outbox_relay_retention_deleted_total", "outbox_relay_dead_letters_total"] {
                #expect(relayMetrics.split(separator: "\n").contains { $0.hasPrefix(name + "{") && $0.contains("table=\"public.outbox\"") },
                        "\(name) by table: \(relayMetrics)")
            }
            // The confirmed LSN, rebuilt exactly from its halves, is one the slot reaches. The
            // relay sets the gauge when it sends the status update and the walsender moves the
            // slot when it reads it, so the slot may trail the scrape by that message (a CI
            // run read it 25 KB behind): the slot must get there, not be there already.
            let high = try #require(LoopbackHTTP.sample("outbox_relay_confirmed_flush_lsn_high", in: relayMetrics))
            let low = try #require(LoopbackHTTP.sample("outbox_relay_confirmed_flush_lsn_low", in: relayMetrics))
            let exported = LSN(high: UInt32(high), low: UInt32(low))
            let deadline = ContinuousClock.now + .seconds(10)
            var slot = try await slotConfirmedLSN(db, slot: ctx.slotName) ?? .invalid
            while slot < exported, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                slot = try await slotConfirmedLSN(db, slot: ctx.slotName) ?? .invalid
            }
            #expect(exported > LSN.invalid && exported <= slot, "metrics say \(exported), the slot is at \(slot)")

            #expect(await consume.terminate() == 0, "\(consume.output.suffix(1_500))")
            #expect(await relay.terminate() == 0, "\(relay.output.suffix(1_500))")
        }
    }

    @Test("systemd-analyze verify accepts both units, with no warning")
    func systemdUnitsVerify() async throws {
        let analyze = try DeployKit.tool("systemd-analyze", package: "systemd")
        let binary = try relayBinary()
        for (unit, command, environmentFile) in [("outbox-relay.service", "run", "run.env"), ("outbox-relay-consume.service", "consume", "consume.env")] {
            let text = try String(contentsOfFile: DeployKit.path("deploy/systemd/\(unit)"), encoding: .utf8)
            let exec = "ExecStart=/usr/local/bin/outbox-relay \(command) --config /etc/outbox-relay/outbox-relay.conf"
            #expect(text.contains(exec + "\n"), "\(unit) must start `\(command)` with the example config")
            #expect(text.contains("EnvironmentFile=/etc/outbox-relay/\(environmentFile)\n"), "\(unit) must read \(environmentFile)")
            #expect(FileManager.default.fileExists(atPath: DeployKit.path("deploy/config/\(environmentFile)")))
            // verify insists that ExecStart's binary exists: a copy pointing at the one just built.
            let directory = NSTemporaryDirectory() + "units-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try text.replacingOccurrences(of: "/usr/local/bin/outbox-relay", with: binary)
                .write(toFile: "\(directory)/\(unit)", atomically: true, encoding: .utf8)
            let result = try await DeployKit.run([analyze, "verify", "\(directory)/\(unit)"])
            // systemd-analyze exits 0 on unknown keys and unparsable values and only prints
            // them: any output is a defect.
            #expect(result.status == 0 && result.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                    "\(unit): exit \(result.status)\n\(result.output)")
        }
        // The stop timeout leaves room for the relay's own drain-timeout.
        let unit = try String(contentsOfFile: DeployKit.path("deploy/systemd/outbox-relay.service"), encoding: .utf8)
        let stop = try #require(DeployKit.matches(of: #"TimeoutStopSec=(\d+)s"#, in: unit).first.flatMap(Int.init))
        let drain = try #require(DeployKit.matches(of: #"\ndrain-timeout = (\d+)s"#, in: try String(contentsOfFile: Self.config, encoding: .utf8)).first.flatMap(Int.init))
        #expect(stop >= drain + 10, "TimeoutStopSec \(stop)s must exceed drain-timeout \(drain)s")
    }

    @Test("the example config and env files parse with the real binary, as written and with every commented example switched on")
    func exampleConfigParses() async throws {
        let text = try String(contentsOfFile: Self.config, encoding: .utf8)
        let allExamples = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            line.wholeMatch(of: /# ([a-z-]+ = .+)/).map { String($0.1) } ?? String(line)
        }.joined(separator: "\n")
        let allExamplesPath = NSTemporaryDirectory() + "outbox-relay-examples-\(UUID().uuidString).conf"
        try allExamples.write(toFile: allExamplesPath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: allExamplesPath) }
        let documented = Set(DeployKit.matches(of: #"(?m)^(?:# )?([a-z-]+) = "#, in: text))

        for (command, envFile) in [("run", "run.env"), ("consume", "consume.env")] {
            let envText = try String(contentsOfFile: DeployKit.path("deploy/config/\(envFile)"), encoding: .utf8)
            for (file, withCommented) in [(Self.config, false), (allExamplesPath, true)] {
                var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OUTBOX_RELAY_") }
                environment.merge(DeployKit.environmentFile(envText, includeCommented: withCommented)) { $1 }
                let result = try await runCLI([command, "--print-config", "--config", file], environment: environment)
                #expect(result.status == 0, "\(command) --print-config --config \(file) (+ \(envFile)):\n\(result.output)")
                let printed = Set(DeployKit.matches(of: #"(?m)^([a-z-]+) = "#, in: result.output))
                #expect(printed == documented, "settings the example does not document: \(printed.subtracting(documented).sorted()); unknown: \(documented.subtracting(printed).sorted())")
                #expect(result.output.contains("slot = outbox_relay"), "\(result.output)")
                #expect(result.output.contains("kafka-1.internal:9092"), "the file's value: \(result.output)")
                #expect(result.output.contains("db.internal"), "the env file's database URL: \(result.output)")
                if command == "consume" { #expect(result.output.contains("http-port = 9188"), "\(result.output)") }
                if withCommented { #expect(result.output.contains("bookings.v1"), "commented examples were not switched on") }
            }
        }
    }
}

/// scripts/setup fetches librdkafka's source package from the Debian mirror the machine
/// already uses, found by scripts/debian-mirror in apt's own source files.
@Suite("setup: Debian mirror")
struct SetupMirrorTests {
    @Test("scripts/setup and scripts/debian-mirror name no host")
    func noHostInScripts() throws {
        for script in ["scripts/setup", "scripts/debian-mirror"] {
            let text = try String(contentsOfFile: DeployKit.path(script), encoding: .utf8)
            let hosts = DeployKit.matches(of: #"([a-z]+://[A-Za-z0-9.-]+)"#, in: text)
            #expect(hosts.isEmpty, "\(script) names \(hosts)")
        }
    }

    @Test("debian-mirror finds the release's archive in deb822 and one-line sources, and fails with the fix when there is none")
    func mirrorFromAptSources() async throws {
        let root = NSTemporaryDirectory() + "apt-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for directory in ["sources.list.d", "apt.conf.d"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(directory)", withIntermediateDirectories: true)
        }
        try "Dir::Etc \"\(root)/\";\n".write(toFile: "\(root)/apt.conf", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["APT_CONFIG"] = "\(root)/apt.conf"
        let command = ["/bin/bash", DeployKit.path("scripts/debian-mirror"), "bookworm"]

        // deb822: the security stanza comes first and must not be taken.
        try """
            Types: deb
            URIs: http://mirror.example/debian-security
            Suites: bookworm-security

            # the main archive
            Types: deb deb-src
            URIs: http://mirror.example/debian/
            Suites: bookworm bookworm-updates
            Components: main
            """.write(toFile: "\(root)/sources.list.d/debian.sources", atomically: true, encoding: .utf8)
        let deb822 = try await DeployKit.run(command, environment: environment)
        #expect(deb822.status == 0 && deb822.output == "http://mirror.example/debian\n", "\(deb822.output)")

        try FileManager.default.removeItem(atPath: "\(root)/sources.list.d/debian.sources")
        try """
            deb http://other.example/debian-security bookworm-security main
            deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://other.example/debian bookworm main
            """.write(toFile: "\(root)/sources.list", atomically: true, encoding: .utf8)
        let oneLine = try await DeployKit.run(command, environment: environment)
        #expect(oneLine.status == 0 && oneLine.output == "http://other.example/debian\n", "\(oneLine.output)")

        try FileManager.default.removeItem(atPath: "\(root)/sources.list")
        let none = try await DeployKit.run(command, environment: environment)
        #expect(none.status == 1 && none.output.contains("no apt source serves Debian bookworm") && none.output.contains("Fix:"), "\(none.output)")
    }

    @Test("a missing tool fails the deploy/ tests with the command that installs it")
    func missingToolMessage() {
        #expect(throws: CheckerError.self) { try DeployKit.tool("no-such-tool-\(UUID().uuidString.prefix(8))", package: "nothing") }
        do { _ = try DeployKit.tool("no-such-tool-x1", package: "nothing"); Issue.record("found a tool that does not exist") } catch {
            #expect("\(error)".contains("bash scripts/setup"), "\(error)")
        }
    }
}

/// File paths, tools and small parsers for the deploy/ tests.
enum DeployKit {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    static func path(_ relative: String) -> String { root + "/" + relative }

    /// The tool's path on PATH, or an error that says how to install it (never a skip).
    static func tool(_ name: String, package: String) throws -> String {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") + ["/usr/bin", "/usr/sbin", "/bin"]
        for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        throw CheckerError("\(name) is not installed. Fix: run `bash scripts/setup`, which installs it (Debian package \(package)).")
    }

    /// Runs a tool to completion (at most `timeout`) and returns its exit status and output.
    static func run(_ arguments: [String], environment: [String: String]? = nil,
                    timeout: Duration = .seconds(60)) async throws -> (status: Int32, output: String) {
        let log = NSTemporaryDirectory() + "deploy-tool-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let process = try ChildProcess(arguments, outputPath: log, environment: environment)
        guard let status = await process.waitForExit(timeout: timeout) else {
            process.signal(SIGKILL)
            _ = await process.waitForExit()
            throw CheckerError("\(arguments.joined(separator: " ")) did not finish within \(timeout)")
        }
        return (status, process.output)
    }

    /// The first capture group of every match.
    static func matches(of pattern: String, in text: String) -> [String] {
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return [] }
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    /// Metric names with at least one sample in Prometheus text.
    static func sampleNames(_ metrics: String) -> Set<String> {
        Set(metrics.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
        })
    }

    /// The PromQL of every panel target and of every query variable (`label_values(expr, label)`).
    static func dashboardQueries(_ path: String) throws -> (queries: [String], panels: [[String: Any]]) {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        guard let dashboard = json as? [String: Any], let panels = dashboard["panels"] as? [[String: Any]] else {
            throw CheckerError("\(path) is not a Grafana dashboard (no panels)")
        }
        var queries = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        let variables = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        for variable in variables where variable["type"] as? String == "query" {
            let query = ((variable["query"] as? [String: Any])?["query"] as? String) ?? ""
            guard let inner = query.wholeMatch(of: /label_values\((.+), *[a-z_]+\)/) else {
                throw CheckerError("variable \(variable["name"] ?? "?"): expected label_values(expr, label), got \(query)")
            }
            queries.append(String(inner.1))
        }
        return (queries, panels)
    }

    /// `NAME=value` lines of a systemd EnvironmentFile; with `includeCommented`, also the
    /// commented `# NAME=value` examples.
    static func environmentFile(_ text: String, includeCommented: Bool) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let body = includeCommented && line.hasPrefix("# OUTBOX_RELAY_") ? line.dropFirst(2) : line[...]
            guard let match = body.wholeMatch(of: /(OUTBOX_RELAY_[A-Z_]+)=(.*)/) else { continue }
            out[String(match.1)] = String(match.2)
        }
        return out
    }
}
