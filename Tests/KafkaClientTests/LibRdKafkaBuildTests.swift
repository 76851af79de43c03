import KafkaClient
import Testing

/// The librdkafka that `scripts/setup` installs: what the relay needs is in, curl and Cyrus SASL are out.
@Suite("librdkafka build")
struct LibRdKafkaBuildTests {
    @Test("built with TLS, SASL PLAIN/SCRAM and compression, and without curl (whose global init loads OpenSSL's configuration into every process) or Cyrus SASL (whose init loads every SASL plugin)")
    func featuresAsInstalled() {
        let features = LibRdKafka.builtinFeatures
        for needed in ["ssl", "sasl_plain", "sasl_scram", "zstd", "lz4", "gzip"] {
            #expect(features.contains(needed), "librdkafka \(LibRdKafka.version) lacks \(needed): \(features.sorted())")
        }
        #expect(!features.contains("http") && !features.contains("oidc"),
                "librdkafka \(LibRdKafka.version) was built with curl; run bash scripts/setup to rebuild it: \(features.sorted())")
        #expect(!features.contains("sasl_gssapi"),
                "librdkafka \(LibRdKafka.version) was built with Cyrus SASL (Kerberos); run bash scripts/setup to rebuild it: \(features.sorted())")
    }
}
