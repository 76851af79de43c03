internal import CRdKafka

/// The librdkafka the process loaded: its version and the features it was built with.
public enum LibRdKafka {
    public static var version: String { String(cString: rd_kafka_version_str()) }

    /// `builtin.features`, e.g. ssl, sasl_scram, zstd. `scripts/setup` builds librdkafka
    /// without curl, so `http` and `oidc` are absent (see docs/benchmarks.md, "Memory").
    public static var builtinFeatures: Set<String> {
        let conf = rd_kafka_conf_new()!
        defer { rd_kafka_conf_destroy(conf) }
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard rd_kafka_conf_get(conf, "builtin.features", &buffer, &size) == RD_KAFKA_CONF_OK else { return [] }
        return Set(errorString(buffer).split(separator: ",").map(String.init))
    }
}
