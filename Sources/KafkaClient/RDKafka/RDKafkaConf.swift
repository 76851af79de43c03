internal import CRdKafka

/// Builds an `rd_kafka_conf_t` from defaults plus user properties (user wins). Errors name
/// the property and librdkafka's reason, never the value (it may be a secret).
func makeRDKafkaConf(defaults: [String: String], configuration: KafkaConfiguration) throws(KafkaError) -> OpaquePointer {
    var all = defaults
    all["bootstrap.servers"] = configuration.bootstrapServers
    all["client.id"] = configuration.clientID
    for (key, value) in configuration.properties { all[key] = value }
    let conf = rd_kafka_conf_new()!
    var errorBuffer = [CChar](repeating: 0, count: 512)
    for (key, value) in all.sorted(by: { $0.key < $1.key }) {
        let rc = rd_kafka_conf_set(conf, key, value, &errorBuffer, errorBuffer.count)
        if rc != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            let reason = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError(code: .configuration,
                             message: "invalid Kafka property \(key): \(KafkaConfiguration.isSecret(key) ? "(value hidden)" : reason)")
        }
    }
    return conf
}
