/// The librdkafka the process loaded: its version and the features it was built with.
public enum LibRdKafka {
    public static var version: String { RDKafkaLibrary.version }

    /// `builtin.features`, e.g. ssl, sasl_scram, zstd. `scripts/setup` builds librdkafka
    /// without curl, so `http` and `oidc` are absent (see docs/benchmarks.md, "Memory").
    public static var builtinFeatures: Set<String> {
        Set(RDKafkaLibrary.builtinFeatures.split(separator: ",").map(String.init))
    }
}
