/// Recognises librdkafka's reports of a broker refusing this client's credentials or TLS
/// settings, and turns them into an error naming the cause and the setting to fix.
///
/// Such a failure never heals by retrying, so callers fail closed on it: start-up
/// (`KafkaProducer.checkConnectivity`) throws it at once instead of waiting out its
/// timeout while librdkafka reconnects. Pure (names and text in, error out), so it is
/// unit-tested on librdkafka's wording without a broker. librdkafka's texts name the
/// mechanism and the broker, never a password.
public enum KafkaSecurityFailure {
    /// - Parameters:
    ///   - name: librdkafka's error name, e.g. `_AUTHENTICATION`, `_SSL`, `_TRANSPORT`.
    ///   - reason: the text librdkafka gave with it.
    /// - Returns: nil when the error is not about authentication or TLS.
    public static func classify(name: String, reason: String) -> KafkaError? {
        let lower = reason.lowercased()
        if name == "_AUTHENTICATION" || name == "SASL_AUTHENTICATION_FAILED"
            || lower.contains("sasl authentication error") || lower.contains("authentication failed") {
            return KafkaError(
                code: .authentication, name: name,
                message: "the broker refused this client's SASL credentials (\(reason)). Fix: check kafka-sasl-username, "
                    + "kafka-sasl-password (OUTBOX_RELAY_KAFKA_SASL_PASSWORD) and kafka-sasl-mechanism "
                    + "(librdkafka: sasl.username, sasl.password, sasl.mechanisms).")
        }
        // librdkafka reports one failed handshake twice: as `_SSL` ("SSL handshake failed: …")
        // and as `_TRANSPORT` with only OpenSSL's text.
        let isTLS = name == "_SSL" || lower.contains("ssl handshake failed") || lower.contains("certificate verify failed")
        // A connection dropped mid-handshake ("Disconnected: connecting to a PLAINTEXT
        // broker listener?") is also what a broker restart looks like: transient, not a refusal.
        guard isTLS, !lower.contains("disconnected") else { return nil }
        if lower.contains("certificate verify failed") || lower.contains("could not be verified") {
            return KafkaError(
                code: .tls, name: name,
                message: "the broker's TLS certificate could not be verified (\(reason)). Fix: point kafka-ssl-ca-location "
                    + "(ssl.ca.location) at the CA that issued the broker's certificate, and use broker addresses the "
                    + "certificate names.")
        }
        return KafkaError(
            code: .tls, name: name,
            message: "the TLS handshake with the broker failed (\(reason)). Fix: check that kafka-security-protocol "
                + "matches the listener (ssl or sasl_ssl for TLS) and kafka-ssl-ca-location.")
    }
}
