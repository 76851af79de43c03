import KafkaClient
import Relay
import Testing

/// `RelayConfiguration.validate()` applies the producer-guarantee check to the relay's
/// Kafka properties (no servers needed).
@Suite("Relay configuration: guarantee-bearing Kafka properties")
struct RelayConfigurationGuaranteeTests {
    func configuration(_ properties: [String: String]) -> RelayConfiguration {
        RelayConfiguration(databaseURL: "postgres://relay@db:5432/app",
                           kafka: KafkaConfiguration(bootstrapServers: "b:9092", properties: properties))
    }

    @Test("validate() throws invalidConfiguration naming the property, the value and the fix")
    func refused() {
        for (property, value) in [("enable.idempotence", "false"), ("acks", "1"), ("request.required.acks", "0"),
                                  ("max.in.flight", "10"), ("message.timeout.ms", "30000"), ("delivery.timeout.ms", "1"),
                                  ("partitioner", "random")] {
            do {
                try configuration([property: value]).validate()
                Issue.record("\(property)=\(value) was accepted")
            } catch {
                #expect(error.code == .invalidConfiguration)
                #expect(error.message.contains("\(property)=\(value)"), "\(error)")
                #expect(error.fix?.contains(property) == true, "\(error)")
                #expect(error.isHalting)
            }
        }
    }

    @Test("validate() accepts the safe values and unrelated properties")
    func accepted() throws {
        try configuration(["enable.idempotence": "true", "acks": "all", "max.in.flight.requests.per.connection": "5",
                           "message.timeout.ms": "0", "partitioner": "murmur2_random", "enable.gapless.guarantee": "false",
                           "linger.ms": "5"]).validate()
    }
}
