import Foundation
import KafkaClient
import Logging
import Testing

/// The connectivity check against a port where no broker listens.
@Suite("Producer connectivity")
struct ProducerConnectivityTests {
    @Test("an unreachable broker fails within a bounded time and names host and port, never the password")
    func unreachableBroker() async throws {
        let port = 1  // tcpmux: nothing listens there on a test host
        let producer = try KafkaProducer(
            configuration: KafkaConfiguration(bootstrapServers: "127.0.0.1:\(port)", properties: [
                "security.protocol": "sasl_plaintext", "sasl.mechanisms": "PLAIN",
                "sasl.username": "relay", "sasl.password": "hunter2-secret",
            ]),
            logger: Logger(label: "test-producer"), onDelivery: { _ in })
        let started = ContinuousClock.now
        let error = await #expect(throws: KafkaError.self) { try await producer.checkConnectivity(timeout: .seconds(2)) }
        // The 2 s timeout, not librdkafka's minute-long defaults: bounded well above 2 s
        // because a loaded CI run (the whole suite in parallel) once took 5.16 s.
        #expect(ContinuousClock.now - started < .seconds(8))
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains("127.0.0.1:\(port)"))
        #expect(!text.contains("hunter2"))
        #expect(error?.isRetriable == true)
        await producer.close(timeout: .zero)
    }
}
