import EphemeralServers
import Foundation
import PostgresClient
import Schema
import Testing

/// The real binary ends in each documented exit status (docs/operations.md, "Exit codes"; `--help`).
/// Numbers are written out here on purpose: supervisors depend on them, so renumbering
/// must fail a test. (0 after SIGTERM: `CLITests.endpointsAndGracefulStop`, the JSON-log test and
/// `sigtermDuringStartupChecks` below; 2 for `status`: `CLITests.statusCheck`; 75: the fault suite's drain-timeout test;
/// 78 for TLS settings or credentials a server refuses at start, with openssl-made
/// certificates: `PostgresTLSTests.cliRefusals` and `KafkaSecurityTests`.)
@Suite("outbox-relay exit statuses")
struct ExitStatusCLITests {
    @Test("usage errors exit 64 (EX_USAGE): a non-integer port, a bad value, an unknown setting, an old flag value that is not a boolean")
    func usage() async throws {
        let url = "postgres://relay@127.0.0.1:\(freeLoopbackPort())/app"
        let port = try await runCLI(["run", "--database-url", url, "--http-port", "nine"])
        #expect(port.status == 64, "\(port.output)")
        #expect(port.output.contains("--http-port"), "\(port.output)")

        let value = try await runCLI(["run", "--database-url", url, "--set", "max-in-flight=lots"])
        #expect(value.status == 64, "\(value.output)")

        var environment = ProcessInfo.processInfo.environment
        environment["OUTBOX_RELAY_MAX_INFLIGHT"] = "5"
        let unknown = try await runCLI(["run", "--database-url", url, "--print-config"], environment: environment)
        #expect(unknown.status == 64, "\(unknown.output)")
        #expect(unknown.output.contains("did you mean"), "\(unknown.output)")

        let oldValue = try await runCLI(["run", "--database-url", url, "--create-slot=maybe"])
        #expect(oldValue.status == 64, "\(oldValue.output)")
        #expect(oldValue.output.contains("--no-create-slot"), "the error names the new spelling: \(oldValue.output)")

        // Checked before connecting: the database port is closed, and the error is the host's.
        let host = try await runCLI(["run", "--database-url", url, "--http-host", "localhost:80"])
        #expect(host.status == 64, "\(host.output)")
        #expect(host.output.contains("http-host") && host.output.contains("IPv6"), "\(host.output)")
    }

    @Test("PostgreSQL or Kafka unreachable at start exits 69 (EX_UNAVAILABLE), naming the address and the fix")
    func unavailableAtStart() async throws {
        let dbPort = freeLoopbackPort()
        let noDatabase = try await runCLI(["run", "--database-url", "postgres://relay:pw-Secret-1@127.0.0.1:\(dbPort)/app", "--http-port", "0"])
        #expect(noDatabase.status == 69, "\(noDatabase.output)")
        #expect(noDatabase.output.contains(String(dbPort)) && noDatabase.output.contains("Fix"), "\(noDatabase.output)")
        #expect(!noDatabase.output.contains("pw-Secret-1"))

        let status = try await runCLI(["status", "--database-url", "postgres://relay@127.0.0.1:\(dbPort)/app"])
        #expect(status.status == 69, "\(status.output)")

        try await withTestContext(broker: false) { ctx in
            _ = try await ctx.migrated()
            let kafkaPort = freeLoopbackPort()
            let noKafka = try await runCLI(["run", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", "127.0.0.1:\(kafkaPort)",
                                            "--http-port", "0", "--slot", ctx.slotName])
            #expect(noKafka.status == 69, "\(noKafka.output)")
            #expect(noKafka.output.contains("127.0.0.1:\(kafkaPort)"), "\(noKafka.output)")
        }
    }

    @Test("a database one migration behind this version (an upgrade that skipped migrate) stops run and consume at start: exit 78, the missing migration and the fix; the slot is not touched; migrate then applies it")
    func schemaBehind() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.connect()
            let all = Migration.all
            try await MigrationRunner(migrations: Array(all.dropLast())).run(on: db)
            let missing = try #require(all.last).name
            let common = ["--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers, "--http-port", "0"]
            for command in [["run", "--slot", ctx.slotName], ["consume"]] {
                let result = try await runCLI(command + common)
                #expect(result.status == 78, "\(command[0]): \(result.output.suffix(2_000))")
                #expect(result.output.contains("lacks a migration") && result.output.contains(missing)
                        && result.output.contains("Fix: run `outbox-relay migrate`"), "\(result.output.suffix(2_000))")
            }
            #expect(try await slotConfirmedLSN(db, slot: ctx.slotName) == nil, "refused before it created the slot")
            let status = try await runCLI(["status", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers])
            #expect(status.status == 2 && status.output.contains("schema: lacks \(missing)"), "\(status.output.suffix(2_000))")
            let migrate = try await runCLI(["migrate", "--database-url", ctx.databaseURL])
            #expect(migrate.status == 0, "\(migrate.output.suffix(2_000))")
            #expect(try await MigrationRunner().pending(on: db).isEmpty)
            let after = try await runCLI(["status", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers])
            #expect(after.output.contains("schema: migrated"), "\(after.output.suffix(2_000))")
        }
    }

    @Test("a halt that needs an operator (the slot is missing and may not be created) exits 78 (EX_CONFIG) with the fix; the old --create-slot false spelling still works")
    func operatorNeeded() async throws {
        try await withTestContext { ctx in
            _ = try await ctx.migrated()
            for spelling in [["--no-create-slot"], ["--create-slot", "false"]] {
                let result = try await runCLI(["run", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                                               "--slot", ctx.slotName, "--http-port", "0", "--set", "sweeper=false"] + spelling)
                #expect(result.status == 78, "\(spelling): \(result.output.suffix(2_000))")
                #expect(result.output.contains("does not exist") && result.output.contains("Fix"), "\(result.output.suffix(2_000))")
            }
            // With --log-format json the final error is a JSON line too, carrying the status.
            let json = try await runCLI(["run", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                                         "--slot", ctx.slotName, "--http-port", "0", "--no-create-slot", "--log-format", "json"])
            #expect(json.status == 78, "\(json.output.suffix(2_000))")
            let lines = json.output.split(separator: "\n")
            for line in lines {
                #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "not JSON: \(line.prefix(300))")
            }
            #expect(lines.last?.contains("\"exit_status\":\"78\"") == true, "\(lines.last ?? "")")
        }
    }

    /// The start-up checks wait up to 10 s for a server that does not answer; a
    /// supervisor's SIGTERM meanwhile killed the process with the default action (143).
    @Test("SIGTERM during the start-up checks (Kafka not answering) ends run and consume at once with exit 0, saying nothing was published")
    func sigtermDuringStartupChecks() async throws {
        try await withTestContext(broker: false) { ctx in
            _ = try await ctx.migrated()
            let silentKafka = SilentLoopbackListener()
            for (command, started) in [(["run", "--slot", ctx.slotName], "starting relay"), (["consume"], "starting consumers")] {
                let process = try ChildProcess([try relayBinary()] + command + [
                    "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", "127.0.0.1:\(silentKafka.port)",
                    "--http-port", "0", "--log-level", "info"], outputPath: NSTemporaryDirectory() + "startup-sigterm-\(ctx.databaseName)-\(command[0]).log")
                // The signal traps are installed before this line is logged.
                #expect(await eventually { process.output.contains(started) }, "\(command[0]): \(process.output.suffix(2_000))")
                let signalled = ContinuousClock.now
                let status = await process.terminate(timeout: .seconds(30))
                #expect(status == 0, "\(command[0]): \(status.map(String.init) ?? "still running after 30 s")\n\(process.output.suffix(2_000))")
                #expect(ContinuousClock.now - signalled < .seconds(5), "\(command[0]) waited for the Kafka check to time out")
                #expect(process.output.contains("stopped during the start-up checks"), "\(command[0]): \(process.output.suffix(2_000))")
            }
            #expect(try await slotConfirmedLSN(ctx.connect(), slot: ctx.slotName) == nil, "stopped before it created the slot")
            withExtendedLifetime(silentKafka) {}  // listening until here
        }
    }

    @Test("--help of the root command and of run lists every exit status")
    func helpListsExitStatuses() async throws {
        for arguments in [["--help"], ["run", "--help"], ["status", "--help"]] {
            let help = try await runCLI(arguments)
            let text = help.output.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "  ", with: " ")
            for code in ["0", "1", "2", "64", "69", "75", "78"] {
                #expect(text.contains(" \(code) "), "\(arguments) --help lacks exit status \(code)")
            }
        }
    }
}
