import KafkaClient
import Testing

/// The librdkafka that `scripts/setup` installs: what the relay needs is in, curl is out.
@Suite("librdkafka build")
struct LibRdKafkaBuildTests {
    @Test("built with TLS, SASL PLAIN/SCRAM and compression, and without curl (whose global init loads OpenSSL's configuration into every process)")
    func featuresAsInstalled() {
        let features = LibRdKafka.builtinFeatures
        for needed in ["ssl", "sasl_plain", "sasl_scram", "zstd", "lz4", "gzip"] {
            #expect(features.contains(needed), "librdkafka \(LibRdKafka.version) lacks \(needed): \(features.sorted())")
        }
        #expect(!features.contains("http") && !features.contains("oidc"),
                "librdkafka \(LibRdKafka.version) was built with curl; run bash scripts/setup to rebuild it: \(features.sorted())")
    }
}
