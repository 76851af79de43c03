internal import CRdKafka

/// The loaded librdkafka's version and build features.
enum RDKafkaLibrary {
    static var version: String { String(cString: rd_kafka_version_str()) }

    /// `builtin.features` of a default configuration, comma-separated.
    static var builtinFeatures: String {
        let conf = rd_kafka_conf_new()!
        defer { rd_kafka_conf_destroy(conf) }
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard rd_kafka_conf_get(conf, "builtin.features", &buffer, &size) == RD_KAFKA_CONF_OK else { return "" }
        return errorString(buffer)
    }
}
