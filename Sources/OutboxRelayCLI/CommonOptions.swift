import ArgumentParser
import CLISettings
import Foundation
import RelayCore

/// Options shared by every subcommand that talks to PostgreSQL and Kafka. Each maps to a
/// setting in `SettingsCatalog` (help texts come from there); unset flags fall back to the
/// environment, then the file.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Config file of `name = value` lines (flags and OUTBOX_RELAY_* variables override it).")
    var config: String?

    @Option(name: .customLong("database-url"), help: SettingsCatalog.help("database-url"))
    var databaseURL: String?

    @Option(name: .customLong("kafka-bootstrap-servers"), help: SettingsCatalog.help("kafka-bootstrap-servers"))
    var kafkaBootstrapServers: String?

    @Option(name: .customLong("kafka-security-protocol"), help: SettingsCatalog.help("kafka-security-protocol"))
    var kafkaSecurityProtocol: String?

    @Option(name: .customLong("kafka-sasl-mechanism"), help: SettingsCatalog.help("kafka-sasl-mechanism"))
    var kafkaSASLMechanism: String?

    @Option(name: .customLong("kafka-sasl-username"), help: SettingsCatalog.help("kafka-sasl-username"))
    var kafkaSASLUsername: String?

    @Option(name: .customLong("kafka-sasl-password"), help: SettingsCatalog.help("kafka-sasl-password"))
    var kafkaSASLPassword: String?

    @Option(name: .customLong("kafka-ssl-ca-location"), help: SettingsCatalog.help("kafka-ssl-ca-location"))
    var kafkaSSLCALocation: String?

    @Option(name: .customLong("kafka-properties"), help: SettingsCatalog.help("kafka-properties"))
    var kafkaProperties: String?

    @Option(name: .customLong("log-level"), help: SettingsCatalog.help("log-level"))
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: SettingsCatalog.help("log-format"))
    var logFormat: String?

    var flags: [String: String] {
        var out: [String: String] = [:]
        out["database-url"] = databaseURL
        out["kafka-bootstrap-servers"] = kafkaBootstrapServers
        out["kafka-security-protocol"] = kafkaSecurityProtocol
        out["kafka-sasl-mechanism"] = kafkaSASLMechanism
        out["kafka-sasl-username"] = kafkaSASLUsername
        out["kafka-sasl-password"] = kafkaSASLPassword
        out["kafka-ssl-ca-location"] = kafkaSSLCALocation
        out["kafka-properties"] = kafkaProperties
        out["log-level"] = logLevel
        out["log-format"] = logFormat
        return out
    }

    /// Reads the config file (if any) and merges it with the environment and `extra` flags.
    func settings(extra: [String: String] = [:]) throws -> Settings {
        var text: String?
        if let config {
            do { text = try String(contentsOfFile: config, encoding: .utf8) } catch {
                throw ValidationError("--config \(config) cannot be read: \(error.localizedDescription). Fix: check the path and permissions.")
            }
        }
        do {
            return try Settings(flags: flags.merging(extra) { $1 }, environment: ProcessInfo.processInfo.environment,
                                fileText: text, filePath: config ?? "config file", known: SettingsCatalog.names)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

struct HTTPOptions: ParsableArguments {
    @Option(name: .customLong("http-host"), help: SettingsCatalog.help("http-host"))
    var httpHost: String?

    @Option(name: .customLong("http-port"), help: SettingsCatalog.help("http-port"))
    var httpPort: Int?

    var flags: [String: String] {
        var out: [String: String] = [:]
        out["http-host"] = httpHost
        out["http-port"] = httpPort.map(String.init)
        return out
    }
}
