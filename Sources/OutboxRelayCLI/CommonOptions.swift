import ArgumentParser
import Foundation
import RelayCore

/// Options shared by every subcommand that talks to PostgreSQL and Kafka. Each maps to a
/// setting in `SettingsCatalog`; unset flags fall back to the environment, then the file.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Config file of `name = value` lines (flags and OUTBOX_RELAY_* variables override it).")
    var config: String?

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL, e.g. postgres://relay@db:5432/app?sslmode=verify-full. Env: OUTBOX_RELAY_DATABASE_URL.")
    var databaseURL: String?

    @Option(name: .customLong("kafka-bootstrap-servers"), help: "Kafka brokers (default 127.0.0.1:9092).")
    var kafkaBootstrapServers: String?

    @Option(name: .customLong("kafka-security-protocol"), help: "plaintext, ssl, sasl_plaintext or sasl_ssl.")
    var kafkaSecurityProtocol: String?

    @Option(name: .customLong("kafka-sasl-mechanism"), help: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    var kafkaSASLMechanism: String?

    @Option(name: .customLong("kafka-sasl-username"), help: "SASL user.")
    var kafkaSASLUsername: String?

    @Option(name: .customLong("kafka-sasl-password"), help: "SASL password (prefer OUTBOX_RELAY_KAFKA_SASL_PASSWORD: flags show up in ps).")
    var kafkaSASLPassword: String?

    @Option(name: .customLong("kafka-ssl-ca-location"), help: "CA bundle for broker TLS.")
    var kafkaSSLCALocation: String?

    @Option(name: .customLong("kafka-properties"), help: "Extra librdkafka properties, comma-separated key=value.")
    var kafkaProperties: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?

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
    @Option(name: .customLong("http-host"), help: "Address for /metrics, /healthz, /readyz (default 127.0.0.1).")
    var httpHost: String?

    @Option(name: .customLong("http-port"), help: "Port for /metrics, /healthz, /readyz (default 9187; 0 disables).")
    var httpPort: String?

    var flags: [String: String] {
        var out: [String: String] = [:]
        out["http-host"] = httpHost
        out["http-port"] = httpPort
        return out
    }
}
