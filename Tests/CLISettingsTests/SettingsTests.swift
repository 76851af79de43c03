@testable import CLISettings
import Testing

@Suite("Settings resolution")
struct SettingsTests {
    let known: Set<String> = ["database-url", "slot", "max-in-flight", "status-interval", "create-slot", "kafka-properties", "capture", "streaming-memory", "topic-allow-list"]

    @Test("flags beat the environment, which beats the file, which beats the default")
    func precedence() throws {
        let file = """
            # comment
            slot = from_file
            max-in-flight = 5
            status-interval = "2s"
            """
        let s = try Settings(flags: ["slot": "from_flag"], environment: ["OUTBOX_RELAY_SLOT": "from_env", "OUTBOX_RELAY_MAX_IN_FLIGHT": "7", "PATH": "/bin"],
                             fileText: file, filePath: "relay.conf", known: known)
        #expect(s.string("slot", default: "d") == "from_flag")
        #expect(s.origin("slot") == .flag)
        #expect(try s.int("max-in-flight", default: 1, range: 1...100) == 7)
        #expect(s.origin("max-in-flight") == .environment("OUTBOX_RELAY_MAX_IN_FLIGHT"))
        #expect(try s.duration("status-interval", default: .seconds(1)) == .seconds(2))
        #expect(s.origin("status-interval") == .file(path: "relay.conf", line: 4))
        #expect(s.string("capture", default: "stream") == "stream")
        #expect(s.origin("capture") == .defaultValue)
    }

    @Test("errors name the setting, the source and what is accepted")
    func errors() throws {
        let s = try Settings(flags: ["max-in-flight": "lots"], environment: ["OUTBOX_RELAY_STATUS_INTERVAL": "soon"], fileText: "create-slot = maybe\ncapture = carrier-pigeon", known: known)
        let e1 = #expect(throws: SettingsError.self) { try s.int("max-in-flight", default: 1, range: 1...10) }
        #expect(e1?.message.contains("max-in-flight") == true && e1?.message.contains("command-line flag") == true)
        let e2 = #expect(throws: SettingsError.self) { try s.duration("status-interval", default: .seconds(1)) }
        #expect(e2?.message.contains("OUTBOX_RELAY_STATUS_INTERVAL") == true)
        let e3 = #expect(throws: SettingsError.self) { try s.bool("create-slot", default: true) }
        #expect(e3?.message.contains("line 1") == true)
        let e4 = #expect(throws: SettingsError.self) { try s.choice("capture", default: "stream", among: ["stream", "notify"]) }
        #expect(e4?.message.contains("stream, notify") == true)
    }

    @Test("unknown names in the file or the environment are errors, with a suggestion")
    func typos() {
        let e1 = #expect(throws: SettingsError.self) { try Settings(flags: [:], environment: [:], fileText: "slott = x", known: known) }
        #expect(e1?.message.contains("slott") == true)
        let e2 = #expect(throws: SettingsError.self) { try Settings(flags: [:], environment: ["OUTBOX_RELAY_CAPTUR": "x"], fileText: nil, known: known) }
        #expect(e2?.message.contains("capture") == true, "suggests the close name")
        #expect(throws: SettingsError.self) { try Settings(flags: [:], environment: [:], fileText: "just words", known: known) }
    }

    @Test func parsers() throws {
        #expect(Settings.parseDuration("250ms") == .milliseconds(250))
        #expect(Settings.parseDuration("5m") == .seconds(300))
        #expect(Settings.parseDuration("7d") == .seconds(604_800))
        #expect(Settings.parseDuration("1.5") == .milliseconds(1_500))
        #expect(Settings.parseDuration("-1s") == nil && Settings.parseDuration("fast") == nil)
        #expect(Settings.parseBytes("8MiB") == 8 << 20)
        #expect(Settings.parseBytes("64kB") == 64 << 10)
        #expect(Settings.parseBytes("512") == 512)
        #expect(Settings.parseBytes("lots") == nil && Settings.parseBytes("-5") == nil)
        let s = try Settings(flags: ["kafka-properties": "linger.ms=5, acks = all", "topic-allow-list": "a, ,b"], environment: [:], fileText: nil, known: known)
        #expect(try s.map("kafka-properties") == ["linger.ms": "5", "acks": "all"])
        #expect(s.list("topic-allow-list") == ["a", "b"])
        let bad = try Settings(flags: ["kafka-properties": "novalue"], environment: [:], fileText: nil, known: known)
        #expect(throws: SettingsError.self) { try bad.map("kafka-properties") }
        #expect(Settings.environmentName("max-in-flight") == "OUTBOX_RELAY_MAX_IN_FLIGHT")
    }
}
