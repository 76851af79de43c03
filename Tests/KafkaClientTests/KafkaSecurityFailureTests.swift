import KafkaClient
import Testing

/// librdkafka 2.x's wording for refused credentials and failed TLS handshakes (as its
/// error callback reports them) mapped to the cause and the setting to fix.
@Suite("Kafka security failures")
struct KafkaSecurityFailureTests {
    @Test("a refused SASL login names the credentials settings", arguments: [
        ("_AUTHENTICATION", "sasl_plaintext://127.0.0.1:9092/bootstrap: SASL authentication error: SASL SCRAM authentication failed: broker responded with unknown-user (after 368ms in state AUTH_REQ)"),
        ("_AUTHENTICATION", "sasl_ssl://broker:9093/1: SASL authentication error: Authentication failed: Invalid username or password (after 5ms in state AUTH_REQ)"),
        ("SASL_AUTHENTICATION_FAILED", "Authentication failed"),
    ])
    func authentication(name: String, reason: String) throws {
        let error = try #require(KafkaSecurityFailure.classify(name: name, reason: reason))
        #expect(error.code == .authentication)
        #expect(!error.isRetriable)
        for phrase in ["SASL credentials", "kafka-sasl-password", "kafka-sasl-username", "kafka-sasl-mechanism", reason] {
            #expect(error.message.contains(phrase), "\(error.message)")
        }
    }

    @Test("an untrusted broker certificate names the CA setting", arguments: [
        ("_SSL", "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 52ms in state SSL_HANDSHAKE)"),
        ("_SSL", "ssl://127.0.0.1:9093/bootstrap: error:0A000086:SSL routines::certificate verify failed (after 7ms in state SSL_HANDSHAKE)"),
        ("_TRANSPORT", "ssl://127.0.0.1:9093/bootstrap: error:0A000086:SSL routines::certificate verify failed (after 2ms in state SSL_HANDSHAKE)"),
    ])
    func untrustedCertificate(name: String, reason: String) throws {
        let error = try #require(KafkaSecurityFailure.classify(name: name, reason: reason))
        #expect(error.code == .tls)
        #expect(error.message.contains("could not be verified") && error.message.contains("kafka-ssl-ca-location"), "\(error.message)")
    }

    @Test("another TLS handshake failure names the protocol setting")
    func otherHandshakeFailure() throws {
        let error = try #require(KafkaSecurityFailure.classify(
            name: "_SSL", reason: "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: error:0A00010B:SSL routines::wrong version number (after 3ms in state SSL_HANDSHAKE)"))
        #expect(error.code == .tls)
        #expect(error.message.contains("kafka-security-protocol"), "\(error.message)")
    }

    @Test("transport and broker errors are not security failures", arguments: [
        ("_TRANSPORT", "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)"),
        ("_ALL_BROKERS_DOWN", "1/1 brokers are down"),
        ("_TIMED_OUT", "Local: Timed out"),
        // The connection dropped mid-handshake, as during a broker restart: transient.
        ("_SSL", "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: connecting to a PLAINTEXT broker listener? (after 39ms in state SSL_HANDSHAKE)"),
        ("_TRANSPORT", "GroupCoordinator: 127.0.0.1:9092: SSL handshake failed: Disconnected: connecting to a PLAINTEXT broker listener? (after 1ms in state SSL_HANDSHAKE)"),
    ])
    func notSecurity(name: String, reason: String) {
        #expect(KafkaSecurityFailure.classify(name: name, reason: reason) == nil)
    }
}
