/// librdkafka settings. `properties` passes straight to `rd_kafka_conf_set`, so any
/// librdkafka property works, including TLS and SASL (`security.protocol`,
/// `ssl.ca.location`, `sasl.mechanisms`, `sasl.username`, `sasl.password`).
public struct KafkaConfiguration: Sendable {
    /// `host:port[,host:port]`. Default: `127.0.0.1:9092`.
    public var bootstrapServers: String
    /// Default: `outbox-relay`.
    public var clientID: String
    /// Raw librdkafka properties; these win over the defaults a client sets.
    public var properties: [String: String]

    public init(bootstrapServers: String = "127.0.0.1:9092", clientID: String = "outbox-relay", properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.properties = properties
    }

    /// True for property names whose values must never be printed.
    public static func isSecret(_ name: String) -> Bool {
        let lower = name.lowercased()
        return lower.contains("password") || lower.contains("secret") || lower.contains("sasl.oauthbearer.config")
            || lower.hasSuffix(".pem") || lower == "ssl.key.pem"
    }

    /// All settings with secret values replaced by `***`, for logs and `--print-config`.
    public var redactedDescription: String {
        var all = properties
        all["bootstrap.servers"] = bootstrapServers
        all["client.id"] = clientID
        return all.sorted { $0.key < $1.key }
            .map { "\($0.key)=\(KafkaConfiguration.isSecret($0.key) ? "***" : $0.value)" }
            .joined(separator: " ")
    }
}
