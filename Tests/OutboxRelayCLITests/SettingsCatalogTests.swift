import CLISettings
import Consumers
import Foundation
import HTTPEndpoint
import Logging
@testable import OutboxRelayCLI
import Relay
import RelayCore
import Testing

/// The settings catalog is the one declaration of every setting: docs/configuration.md, the
/// library configurations' defaults and the CLI's own fallbacks must agree with it.
@Suite("Settings catalog: one declaration")
struct SettingsCatalogTests {
    static func repositoryFile(_ path: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    @Test("docs/configuration.md is exactly what the catalog generates")
    func configurationDocumentMatchesCatalog() throws {
        let committed = try Self.repositoryFile("docs/configuration.md")
        let generated = ConfigurationReference.markdown()
        let committedRows = committed.split(separator: "\n").filter { $0.hasPrefix("| `") }.map(String.init)
        #expect(committedRows == SettingsCatalog.all.map(ConfigurationReference.row), """
            docs/configuration.md's settings table differs from SettingsCatalog. \
            Fix: swift run outbox-relay settings > docs/configuration.md
            """)
        #expect(committed == generated, "docs/configuration.md is not what `outbox-relay settings` prints. Fix: swift run outbox-relay settings > docs/configuration.md")
    }

    @Test("the generated reference has one row per setting, in catalog order, secrets marked")
    func generatedRows() {
        let specs = [SettingSpec(name: "a", defaultText: "1s", help: "first"), SettingSpec(name: "b", defaultText: "", help: "second", secret: true)]
        let text = ConfigurationReference.markdown(specs)
        #expect(text.hasSuffix("| `a` | `1s` | first |\n| `b` (secret) | — | second |\n"))
        #expect(text.hasPrefix("# Configuration reference\n"))
    }

    /// Resolving with nothing set must give what resolving with every default spelled out
    /// gives: a catalog default that drifted from the code's default fails here.
    @Test("every catalog default, parsed, equals the default the code uses")
    func catalogDefaultsMatchCode() throws {
        let placeholders: Set = ["(required)", "$TMPDIR or /tmp"]
        var spelled: [String: String] = ["database-url": "postgres://relay@db:5432/app"]
        for spec in SettingsCatalog.all where !placeholders.contains(spec.defaultText) && !spec.defaultText.isEmpty {
            spelled[spec.name] = spec.defaultText
        }
        let implicit = ResolvedConfiguration(settings: try Settings(flags: ["database-url": "postgres://relay@db:5432/app"], environment: [:],
                                                                   fileText: nil, known: SettingsCatalog.names))
        let explicit = ResolvedConfiguration(settings: try Settings(flags: spelled, environment: [:], fileText: nil, known: SettingsCatalog.names))

        let (a, b) = (try implicit.relay(), try explicit.relay())
        #expect(a.capture == b.capture && a.slotName == b.slotName && a.publication == b.publication && a.createSlot == b.createSlot)
        #expect(a.router.deadLetterTopic == b.router.deadLetterTopic)
        #expect(a.maxInFlightEvents == b.maxInFlightEvents && a.maxInFlightBytes == b.maxInFlightBytes)
        #expect(a.streamingMemoryBytes == b.streamingMemoryBytes)
        #expect(a.catchUpReads == b.catchUpReads)
        #expect(a.statusInterval == b.statusInterval && a.drainTimeout == b.drainTimeout)
        #expect(a.notifyChannel == b.notifyChannel && a.notifyFallbackInterval == b.notifyFallbackInterval)
        #expect(a.kafka.bootstrapServers == b.kafka.bootstrapServers && a.kafka.properties == b.kafka.properties)

        let (sweepA, sweepB) = (try implicit.sweeper(), try explicit.sweeper())
        #expect(sweepA.policy == sweepB.policy && sweepA.retention == sweepB.retention)

        let (consumerA, consumerB) = (try implicit.consumer(), try explicit.consumer())
        #expect(consumerA.groupID == consumerB.groupID && consumerA.batchSize == consumerB.batchSize
                && consumerA.deadLetterTopic == consumerB.deadLetterTopic && consumerA.drainTimeout == consumerB.drainTimeout
                && consumerA.tables == consumerB.tables)

        #expect(try implicit.http() == explicit.http())
        #expect(try implicit.logLevel() == explicit.logLevel())
        #expect(try implicit.logFormat() == explicit.logFormat())
    }

    @Test("library defaults that the CLI passes through equal the catalog's (no second place drifts)")
    func libraryDefaultsMatchCatalog() throws {
        let relay = RelayConfiguration(databaseURL: "postgres://relay@db/app", kafka: .init(bootstrapServers: "b:9092"))
        func bytes(_ name: String) -> Int? { SettingsCatalog.spec(name).flatMap { Settings.parseBytes($0.defaultText) } }
        func duration(_ name: String) -> Duration? { SettingsCatalog.spec(name).flatMap { Settings.parseDuration($0.defaultText) } }
        #expect(bytes("max-in-flight-bytes") == relay.maxInFlightBytes)
        #expect(bytes("streaming-memory") == relay.streamingMemoryBytes)
        #expect(bytes("catch-up-read-size") == relay.catchUpReads.batchBytes)
        #expect(SettingsCatalog.spec("max-in-flight")?.defaultText == String(relay.maxInFlightEvents))
        #expect(duration("drain-timeout") == relay.drainTimeout)
        let consumer = ConsumerConfiguration(databaseURL: "postgres://consumer@db/app", kafka: .init(bootstrapServers: "b:9092"))
        #expect(duration("drain-timeout") == consumer.drainTimeout)
        #expect(duration("status-interval") == relay.statusInterval)
        #expect(SettingsCatalog.spec("slot")?.defaultText == relay.slotName)
        let policy = SweeperPolicy()
        #expect(duration("sweeper-interval") == policy.interval && duration("sweeper-min-age") == policy.minimumAge)
        #expect(SettingsCatalog.spec("sweeper-max-attempts")?.defaultText == String(policy.maxAttempts))
    }

    /// A validation error that suggests the default names it in the catalog's spelling, so
    /// the suggestion can be pasted as is and a changed default cannot leave it behind.
    @Test("an out-of-range setting's error suggests the catalog's default, for the relay and the consumers")
    func validationErrorsNameCatalogDefault() {
        let relay = RelayConfiguration(databaseURL: "postgres://relay@db/app", kafka: .init(bootstrapServers: "b:9092"))
        Self.expectFixesNameDefault(relay, validate: { try $0.validate() }, cases: [
            ("publication", { $0.publication = "" }),
            ("max-in-flight", { $0.maxInFlightEvents = 0 }),
            ("max-in-flight-bytes", { $0.maxInFlightBytes = 1 }),
            ("streaming-memory", { $0.streamingMemoryBytes = 1 }),
            ("catch-up-read-size", { $0.catchUpReads = CatchUpReads(batchBytes: 100) }),
            ("status-interval", { $0.statusInterval = .milliseconds(1) }),
            ("notify-channel", { $0.notifyChannel = "" }),
            ("drain-timeout", { $0.drainTimeout = .zero }),
        ])
        let consumer = ConsumerConfiguration(databaseURL: "postgres://consumer@db/app", kafka: .init(bootstrapServers: "b:9092"))
        Self.expectFixesNameDefault(consumer, validate: { try $0.validate() }, cases: [
            ("group-id", { $0.groupID = "" }),
            ("batch-size", { $0.batchSize = 0 }),
            ("consumer-dead-letter-topic", { $0.deadLetterTopic = "" }),
            ("drain-timeout", { $0.drainTimeout = .zero }),
        ])
    }

    /// Breaks `valid` one setting at a time and expects each error to name that setting's
    /// catalog default.
    static func expectFixesNameDefault<Configuration>(_ valid: Configuration, validate: (Configuration) throws -> Void,
                                                      cases: [(setting: String, breakIt: (inout Configuration) -> Void)]) {
        for (setting, breakIt) in cases {
            var configuration = valid
            breakIt(&configuration)
            do {
                try validate(configuration)
                Issue.record("\(setting): accepted")
            } catch {
                #expect("\(error)".contains("default \(SettingsCatalog.defaultText(setting))"), "\(setting): \(error)")
            }
        }
    }

    @Test("every flag's help names the catalog default; secrets point at the environment")
    func helpComesFromCatalog() {
        #expect(SettingsCatalog.help("drain-timeout").abstract.contains("(default 30s)"))
        #expect(SettingsCatalog.help("slot").abstract.contains("OUTBOX_RELAY_SLOT"))
        #expect(SettingsCatalog.help("kafka-sasl-password").abstract.contains("prefer OUTBOX_RELAY_KAFKA_SASL_PASSWORD"))
        let runHelp = Run.helpMessage()
        for name in ["slot", "capture", "http-port", "log-format"] {
            #expect(runHelp.contains("--\(name)"), "run --help lacks --\(name)")
        }
    }
}

@Suite("CLI spellings and the JSON log line")
struct CLISpellingTests {
    @Test("--create-slot VALUE and --create-slot=VALUE of earlier versions become the flag pair; a bad value names the new spelling",
          arguments: [
              (["run", "--create-slot", "false", "--slot", "s"], ["run", "--no-create-slot", "--slot", "s"]),
              (["run", "--create-slot=true"], ["run", "--create-slot"]),
              (["run", "--create-slot"], ["run", "--create-slot"]),
              (["run", "--no-create-slot"], ["run", "--no-create-slot"]),
              (["run", "--create-slot", "--slot", "off"], ["run", "--create-slot", "--slot", "off"]),
              (["run", "--create-slot", "OFF"], ["run", "--no-create-slot"]),
          ])
    func legacyCreateSlot(input: [String], expected: [String]) throws {
        #expect(try LegacySpellings.translate(input) == expected)
    }

    @Test("--create-slot=maybe is an error naming --create-slot and --no-create-slot")
    func legacyCreateSlotBadValue() {
        do {
            _ = try LegacySpellings.translate(["run", "--create-slot=maybe"])
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("--no-create-slot"), "\(error)")
        }
    }

    @Test("a JSON log line carries time, level, component, message and metadata, escaped")
    func jsonLine() throws {
        let line = JSONLogHandler.render(time: "2026-11-26T19:00:00.123Z", level: .notice, component: "outbox-relay",
                                         message: "say \"hi\"\n\u{1}", metadata: ["slot": "s", "nested": ["a": ["1", "2"]]])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2026-11-26T19:00:00.123Z")
        #expect(object["level"] as? String == "notice")
        #expect(object["component"] as? String == "outbox-relay")
        #expect(object["message"] as? String == "say \"hi\"\n\u{1}")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["slot"] as? String == "s")
        #expect((metadata["nested"] as? [String: Any])?["a"] as? [String] == ["1", "2"])
        #expect(!line.contains("\n"))
        let time = JSONLogHandler.now()
        #expect(time.count == 24 && time.hasSuffix("Z"), "\(time)")
    }

    @Test("http-host takes IPv4 and IPv6 literals (bracketed too), nothing else",
          arguments: [("127.0.0.1", "ipv4 127.0.0.1"), ("0.0.0.0", "ipv4 0.0.0.0"), ("::1", "ipv6 ::1"),
                      ("[::1]", "ipv6 ::1"), ("::", "ipv6 ::"), ("fe80::1", "ipv6 fe80::1"),
                      ("localhost", nil), ("::1:80:x", nil), ("127.0.0.1:80", nil), ("", nil)])
    func httpHost(host: String, expected: String?) {
        #expect(ListenAddress(host: host, port: 0).map { "\($0.family) \($0.host)" } == expected)
    }

    @Test("run's boolean settings are flag pairs")
    func booleanFlags() throws {
        let run = try Run.parse(["--no-create-slot", "--sweeper"])
        #expect(run.createSlot == false && run.sweeper == true)
        let unset = try Run.parse([])
        #expect(unset.createSlot == nil && unset.sweeper == nil, "unset flags leave the environment and the file in charge")
    }

    @Test("exit statuses are the documented numbers, and --help lists each")
    func exitStatusNumbers() {
        #expect(ExitStatus.allCases.map(\.rawValue) == [0, 1, 2, 64, 69, 75, 78])
        for status in ExitStatus.allCases { #expect(ExitStatus.helpText.contains("\(status.rawValue) \(status.meaning)")) }
    }
}

@Suite("Operations surface documented once")
struct OperationsDocumentationTests {
    /// The metadata keys logs may carry, one spelling per meaning (docs/operations.md, "Logs"). A new key
    /// joins this list; a second spelling of an existing meaning (`retry_in_s` beside
    /// `retry_in`, `count` for partitions) is what this test exists to stop.
    static let metadataKeys: Set = [
        "acknowledged", "attempt", "channel", "code", "config", "confirmed", "dead", "deleted", "drain", "drain_timeout", "error", "exit_status", "facility",
        "fix", "from", "group", "lsn", "messages", "outbox_id", "partitions", "problem", "reason", "recorded", "resent", "retry_in",
        "server", "signal", "skipped", "slot", "slot_confirmed", "topic", "topics", "unacknowledged", "unroutable",
    ]

    static func sourceRoot() -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    @Test("every log metadata key in Sources is snake_case and on the documented list")
    func metadataKeysAreConsistent() throws {
        let root = Self.sourceRoot().appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        #expect(files.count > 20)
        let key = try Regex(#""([^"\\]+)":\s"#)
        var seen: Set<String> = []
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for line in text.split(separator: "\n") where line.contains("metadata: [") {
                let literal = line[line.range(of: "metadata: [")!.upperBound...]
                for match in literal.matches(of: key) {
                    let name = String(match.output[1].substring ?? "")
                    seen.insert(name)
                    #expect(Self.metadataKeys.contains(name), "\(file.lastPathComponent): metadata key \"\(name)\" is not on the list (docs/operations.md, \"Logs\")")
                }
            }
        }
        #expect(seen.count > 10, "the scan found too few keys: \(seen)")
    }

    @Test("docs/operations.md's exit-code table lists every ExitStatus")
    func documentedExitCodes() throws {
        let operations = try SettingsCatalogTests.repositoryFile("docs/operations.md")
        for status in ExitStatus.allCases {
            #expect(operations.contains("\n| \(status.rawValue) |") || operations.contains("\n| \(status.rawValue) (`EX_"),
                    "docs/operations.md lacks exit code \(status.rawValue)")
        }
    }
}
