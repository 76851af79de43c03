import KafkaClient
import Logging
import Testing

/// Configuration errors and redaction: no broker involved.
@Suite("Kafka configuration")
struct KafkaConfigurationTests {
    @Test("the configuration's description redacts secrets")
    func redaction() {
        let config = KafkaConfiguration(bootstrapServers: "b:9092", properties: [
            "sasl.password": "hunter2", "ssl.key.password": "k3y", "ssl.keystore.password": "s", "linger.ms": "5",
        ])
        let text = config.redactedDescription
        #expect(!text.contains("hunter2") && !text.contains("k3y"))
        #expect(text.contains("linger.ms=5"))
    }

    @Test("an unknown librdkafka property is a configuration error that names it")
    func badProperty() {
        let error = #expect(throws: KafkaError.self) {
            _ = try KafkaProducer(configuration: KafkaConfiguration(properties: ["no.such.setting": "1"]),
                                  logger: Logger(label: "t"), onDelivery: { _ in })
        }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("no.such.setting") == true)
    }
}
