@testable import KafkaClient
import Testing

@Suite("Producer guarantees: guarantee-bearing librdkafka properties are refused")
struct ProducerGuaranteesTests {
    /// Properties that would switch off no-loss or per-key order, with the name the error
    /// must carry and a fragment of the fix.
    static let refused: [(property: String, value: String, fix: String)] = [
        ("enable.idempotence", "false", "the relay needs enable.idempotence=true"),
        ("enable.idempotence", "0", "enable.idempotence=true"),
        ("enable.idempotence", "f", "enable.idempotence=true"),
        ("enable.idempotence", "", "enable.idempotence=true"),
        ("acks", "1", "acks=all"),
        ("acks", "0", "acks=all"),
        ("acks", "leader", "acks=all"),
        ("request.required.acks", "1", "request.required.acks=all"),
        ("topic.acks", "1", "acks=all"),
        ("topic.request.required.acks", "0", "request.required.acks=all"),
        ("max.in.flight.requests.per.connection", "6", "from 1 to 5"),
        ("max.in.flight.requests.per.connection", "1000000", "from 1 to 5"),
        ("max.in.flight.requests.per.connection", "0", "from 1 to 5"),
        ("max.in.flight", "6", "from 1 to 5"),
        ("max.in.flight", "5x", "from 1 to 5"),
        ("message.timeout.ms", "300000", "message.timeout.ms=0"),
        ("message.timeout.ms", "1", "message.timeout.ms=0"),
        ("delivery.timeout.ms", "30000", "delivery.timeout.ms=0"),
        ("topic.message.timeout.ms", "5000", "message.timeout.ms=0"),
        ("topic.delivery.timeout.ms", "5000", "delivery.timeout.ms=0"),
        ("partitioner", "consistent_random", "partitioner=murmur2_random"),
        ("partitioner", "random", "partitioner=murmur2_random"),
        ("partitioner", "murmur2", "partitioner=murmur2_random"),
        ("topic.partitioner", "fnv1a", "partitioner=murmur2_random"),
    ]

    @Test("refused: the error names the property, the value, why, and the fix", arguments: refused.indices)
    func refusesProperty(index: Int) throws {
        let (property, value, fix) = Self.refused[index]
        let violation = try #require(ProducerGuarantees.check([property: value]), "\(property)=\(value) was accepted")
        #expect(violation.property == property)
        #expect(violation.value == value)
        #expect(violation.message.contains("\(property)=\(value)"), "\(violation.message)")
        #expect(violation.message.contains("refused"))
        #expect(!violation.reason.isEmpty)
        #expect(violation.fix.hasPrefix("remove it"), "\(violation.fix)")
        #expect(violation.fix.contains(fix), "\(violation.fix)")
        #expect(violation.description.contains("Fix: \(violation.fix)"))
    }

    /// The defaults themselves, their librdkafka spellings, and properties that carry no
    /// guarantee.
    static let accepted: [(property: String, value: String)] = [
        ("enable.idempotence", "true"), ("enable.idempotence", "TRUE"), ("enable.idempotence", "t"), ("enable.idempotence", "1"),
        ("acks", "all"), ("acks", "ALL"), ("acks", "-1"), ("request.required.acks", "all"), ("request.required.acks", "-1"),
        ("topic.acks", "all"),
        ("max.in.flight.requests.per.connection", "1"), ("max.in.flight.requests.per.connection", "5"), ("max.in.flight", "3"),
        ("message.timeout.ms", "0"), ("delivery.timeout.ms", "0"), ("topic.message.timeout.ms", "0"),
        ("partitioner", "murmur2_random"), ("topic.partitioner", "murmur2_random"),
        ("enable.gapless.guarantee", "false"), ("enable.gapless.guarantee", "true"),
        ("linger.ms", "5"), ("compression.type", "zstd"), ("security.protocol", "sasl_ssl"), ("sasl.password", "x"),
        ("allow.auto.create.topics", "true"), ("retries", "2147483647"),
    ]

    @Test("accepted: safe values and unrelated properties", arguments: accepted.indices)
    func acceptsProperty(index: Int) {
        let (property, value) = Self.accepted[index]
        #expect(ProducerGuarantees.check([property: value]) == nil, "\(property)=\(value) was refused")
    }

    @Test("the producer's own defaults pass the check")
    func defaultsPass() {
        #expect(ProducerGuarantees.violations(KafkaProducer.defaultProperties).isEmpty)
        #expect(ProducerGuarantees.check([:]) == nil)
    }

    @Test("several refused properties: all are found, the first in name order is reported")
    func several() throws {
        let properties = ["partitioner": "random", "acks": "1", "linger.ms": "2", "enable.idempotence": "false"]
        #expect(ProducerGuarantees.violations(properties).map(\.property) == ["acks", "enable.idempotence", "partitioner"])
        #expect(try #require(ProducerGuarantees.check(properties)).property == "acks")
    }

    @Test("a value with control characters is printed escaped and bounded")
    func printableValue() throws {
        let violation = try #require(ProducerGuarantees.check(["acks": "1\n\u{1B}[31m" + String(repeating: "x", count: 500)]))
        #expect(!violation.message.contains("\n") && !violation.message.contains("\u{1B}"))
        #expect(violation.message.count < 400)
    }
}
