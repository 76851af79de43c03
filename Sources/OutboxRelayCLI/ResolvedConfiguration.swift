import ArgumentParser
import CLISettings
import Consumers
import Foundation
import HTTPEndpoint
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import Relay
import RelayCore
import Schema

/// Turns resolved settings into the library configurations, validating everything up
/// front; every failure is a `ValidationError` that names the setting and the fix.
struct ResolvedConfiguration {
    let settings: Settings

    func require(_ body: () throws -> Void) throws {
        do { try body() } catch let error as SettingsError { throw ValidationError(error.description) }
    }

    var databaseURL: String {
        get throws {
            guard let url = settings.optionalString("database-url") else {
                throw ValidationError("database-url is not set. Fix: pass --database-url postgres://user@host:5432/db, or set OUTBOX_RELAY_DATABASE_URL, or add database-url to the config file.")
            }
            return url
        }
    }

    func kafka(clientID: String) throws -> KafkaConfiguration {
        var properties: [String: String] = [:]
        do { properties = try settings.map("kafka-properties") } catch { throw ValidationError(error.description) }
        let protocolName = try choice("kafka-security-protocol", default: SettingsCatalog.defaultText("kafka-security-protocol"), ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"])
        properties["security.protocol"] = protocolName
        if let mechanism = settings.optionalString("kafka-sasl-mechanism") { properties["sasl.mechanisms"] = mechanism }
        if let user = settings.optionalString("kafka-sasl-username") { properties["sasl.username"] = user }
        if let password = settings.optionalString("kafka-sasl-password") { properties["sasl.password"] = password }
        if let ca = settings.optionalString("kafka-ssl-ca-location") { properties["ssl.ca.location"] = ca }
        if protocolName.hasPrefix("sasl"), properties["sasl.username"] == nil {
            throw ValidationError("kafka-security-protocol is \(protocolName) but kafka-sasl-username is not set. Fix: set kafka-sasl-username and kafka-sasl-password (OUTBOX_RELAY_KAFKA_SASL_PASSWORD).")
        }
        let servers = settings.string("kafka-bootstrap-servers", default: SettingsCatalog.defaultText("kafka-bootstrap-servers"))
        for server in servers.split(separator: ",") where !server.contains(":") {
            throw ValidationError("kafka-bootstrap-servers entry \"\(server)\" has no port. Fix: use host:port, e.g. broker:9092.")
        }
        return KafkaConfiguration(bootstrapServers: servers, clientID: clientID, properties: properties)
    }

    func relay() throws -> RelayConfiguration {
        var routes: [String: String] = [:]
        do { routes = try settings.map("topic-routes") } catch { throw ValidationError(error.description) }
        let router: TopicRouter
        do {
            router = try TopicRouter(routes: routes, allowList: Set(settings.list("topic-allow-list")),
                                     deadLetterTopic: settings.string("dead-letter-topic", default: RecordContract.Topic.relayDeadLetters))
        } catch { throw ValidationError("\(error). Fix: correct topic-routes, topic-allow-list or dead-letter-topic.") }
        var c = RelayConfiguration(databaseURL: try databaseURL, kafka: try kafka(clientID: "outbox-relay"), router: router)
        try require {
            c.capture = CaptureMode(rawValue: try settings.choice("capture", default: SettingsCatalog.defaultText("capture"), among: CaptureMode.allCases.map(\.rawValue)))!
            c.slotName = settings.string("slot", default: c.slotName)
            c.publication = settings.string("publication", default: c.publication)
            c.tables = try outboxTables()
            c.createSlot = try settings.bool("create-slot", default: c.createSlot)
            c.maxInFlightEvents = try settings.int("max-in-flight", default: c.maxInFlightEvents, range: 1...1_000_000)
            c.maxInFlightBytes = try settings.bytes("max-in-flight-bytes", default: c.maxInFlightBytes)
            c.streamingMemoryBytes = try settings.bytes("streaming-memory", default: c.streamingMemoryBytes)
            c.catchUpReads = CatchUpReads(batchBytes: try settings.bytes("catch-up-read-size", default: c.catchUpReads.batchBytes))
            c.spillDirectory = settings.string("spill-dir", default: ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
            c.statusInterval = try settings.duration("status-interval", default: c.statusInterval)
            c.drainTimeout = try settings.duration("drain-timeout", default: c.drainTimeout)
            c.notifyChannel = settings.string("notify-channel", default: c.notifyChannel)
            c.notifyFallbackInterval = try settings.duration("notify-fallback-interval", default: c.notifyFallbackInterval)
            c.notifyListenURL = settings.optionalString("notify-listen-url")
            c.headerStyle = HeaderStyle(rawValue: try settings.choice("header-style", default: c.headerStyle.rawValue,
                                                                      among: HeaderStyle.allCases.map(\.rawValue)))!
        }
        try applyShard(to: &c)
        do { try c.validate() } catch { throw ValidationError(error.description) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: c.spillDirectory, isDirectory: &isDirectory), isDirectory.boolValue,
              FileManager.default.isWritableFile(atPath: c.spillDirectory) else {
            throw ValidationError("spill-dir \(c.spillDirectory) is not a writable directory. Fix: create it or point spill-dir elsewhere.")
        }
        return c
    }

    /// `outbox-tables`, parsed (`OutboxTable.parseList`).
    func outboxTables() throws -> [OutboxTable] {
        let text = settings.string("outbox-tables", default: SettingsCatalog.defaultText("outbox-tables"))
        do { return try OutboxTable.parseList(text) } catch { throw ValidationError("outbox-tables: \(error)") }
    }

    /// `shard = I/N`: the shard's slot and publication are derived from the base names.
    func applyShard(to c: inout RelayConfiguration) throws {
        guard let text = settings.optionalString("shard"), !text.isEmpty else { return }
        do {
            let shard = try ShardSpec.parse(text)
            c.shard = shard
            c.slotName = shard.slotName(base: c.slotName)
            c.publication = shard.publicationName(base: c.publication)
        } catch { throw ValidationError("shard: \(error)") }
    }

    func sweeper() throws -> (policy: SweeperPolicy?, retention: Duration?) {
        var policy = SweeperPolicy()
        var enabled = Settings.parseBool(SettingsCatalog.defaultText("sweeper"))!
        var retention = Settings.parseDuration(SettingsCatalog.defaultText("retention"))!
        try require {
            enabled = try settings.bool("sweeper", default: enabled)
            policy.interval = try settings.duration("sweeper-interval", default: policy.interval)
            policy.minimumAge = try settings.duration("sweeper-min-age", default: policy.minimumAge)
            policy.maxAttempts = try settings.int("sweeper-max-attempts", default: policy.maxAttempts, range: 1...1_000)
            policy.backoffBase = try settings.duration("sweeper-backoff", default: policy.backoffBase)
            policy.backoffCap = try settings.duration("sweeper-backoff-max", default: policy.backoffCap)
            policy.batchSize = try settings.int("sweeper-batch", default: policy.batchSize, range: 1...10_000)
            retention = try settings.duration("retention", default: retention)
            if settings.raw("sweeper-writeback-topics") != nil { policy.scope.declaredTopics = Set(settings.list("sweeper-writeback-topics")) }
            policy.scope.consumerExpiry = try settings.duration("sweeper-consumer-expiry", default: policy.scope.consumerExpiry)
            let deadRetention = try settings.duration("dead-retention", default: policy.deadRetention ?? .zero)
            policy.deadRetention = deadRetention == .zero ? nil : deadRetention
        }
        do { try policy.validate() } catch { throw ValidationError("\(error). Fix: see `outbox-relay run --help`.") }
        return (enabled ? policy : nil, retention == .zero ? nil : retention)
    }

    func consumer() throws -> ConsumerConfiguration {
        var c = ConsumerConfiguration(databaseURL: try databaseURL, kafka: try kafka(clientID: "outbox-consumers"))
        try require {
            c.groupID = settings.string("group-id", default: c.groupID)
            c.batchSize = try settings.int("batch-size", default: c.batchSize, range: 1...10_000)
            c.deadLetterTopic = settings.string("consumer-dead-letter-topic", default: c.deadLetterTopic)
            c.drainTimeout = try settings.duration("drain-timeout", default: c.drainTimeout)
            c.tables = try outboxTables()
        }
        do { try c.validate() } catch { throw ValidationError(error.description) }
        return c
    }

    func http() throws -> (host: String, port: Int) {
        var port = Int(SettingsCatalog.defaultText("http-port"))!
        try require { port = try settings.int("http-port", default: port, range: 0...65_535) }
        let host = settings.string("http-host", default: SettingsCatalog.defaultText("http-host"))
        guard ListenAddress(host: host, port: 0) != nil else {
            throw ValidationError("http-host \(host) is not an IPv4 or IPv6 address. Fix: use e.g. 127.0.0.1, 0.0.0.0, ::1, [::1] or ::.")
        }
        return (host, port)
    }

    func logLevel() throws -> Logger.Level {
        let text = try choice("log-level", default: SettingsCatalog.defaultText("log-level"), ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        return Logger.Level(rawValue: text)!
    }

    func logFormat() throws -> LogFormat {
        LogFormat(rawValue: try choice("log-format", default: SettingsCatalog.defaultText("log-format"), LogFormat.allCases.map(\.rawValue)))!
    }

    func choice(_ name: String, default fallback: String, _ options: [String]) throws -> String {
        do { return try settings.choice(name, default: fallback, among: options) } catch { throw ValidationError(error.description) }
    }

    /// Every setting with its value and origin; secrets redacted. Safe to log.
    var redactedDescription: String {
        SettingsCatalog.all.map { spec in "\(spec.name) = \(redactedValue(spec))  (\(settings.origin(spec.name)))" }.joined(separator: "\n")
    }

    /// The start-up line's `config`: for `log-format json` every setting as an object; for
    /// `text` the settings given, on one line like every text event (the whole list would
    /// be dozens of lines, or one line of kilobytes; `--print-config` prints it).
    var startupMetadata: Logger.MetadataValue {
        guard Observability.logFormat == .text else { return .dictionary(redactedMetadata) }
        let given = SettingsCatalog.all.filter { settings.raw($0.name) != nil }
            .map { "\($0.name) = \(redactedValue($0)) (\(settings.origin($0.name)))" }
        return .string((given + ["every other setting at its default (--print-config lists them all)"]).joined(separator: "; "))
    }

    /// The same as log metadata, one key per setting (`value (origin)`): a JSON log line
    /// carries it as an object a log shipper can index.
    var redactedMetadata: Logger.Metadata {
        var out: Logger.Metadata = [:]
        for spec in SettingsCatalog.all { out[spec.name] = "\(redactedValue(spec)) (\(settings.origin(spec.name)))" }
        return out
    }

    private func redactedValue(_ spec: SettingSpec) -> String {
        guard let raw = settings.raw(spec.name) else { return spec.defaultText }
        if spec.name == "database-url" || spec.name == "notify-listen-url" { return ConnectionTarget.redact(raw) }
        return spec.secret ? "<redacted>" : raw
    }
}
