@testable import PostgresClient
import Testing

/// libpq 15's connect-failure wording (its message templates, filled in) mapped to
/// the cause and the setting to change.
@Suite("Connect-failure advice")
struct ConnectFailureAdviceTests {
    @Test("each libpq failure gets its cause and fix, after libpq's own text", arguments: [
        ("connection to server at \"127.0.0.1\", port 5432 failed: SSL error: certificate verify failed",
         ["not signed by a CA in sslrootcert", "Fix: check sslrootcert"]),
        ("connection to server at \"127.0.0.1\", port 5432 failed: server certificate for \"db.outbox.test\" does not match host name \"127.0.0.1\"",
         ["not issued for the host name", "Fix: connect with a host name listed in the certificate"]),
        ("connection to server at \"127.0.0.1\", port 5432 failed: server certificate for \"db.outbox.test\" (and 1 other name) does not match host name \"wrong.test\"",
         ["not issued for the host name"]),
        ("connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"app\", no encryption",
         ["accepts only TLS connections", "sslmode=verify-full", "sslmode=require"]),
        ("connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"relay\", no encryption",
         ["accepts only TLS connections", "sslmode=verify-full"]),
        ("connection to server at \"127.0.0.1\", port 5432 failed: root certificate file \"/root/.postgresql/root.crt\" does not exist\nEither provide the file or change sslmode to disable server certificate verification.",
         ["Fix: set sslrootcert="]),
        ("connection to server at \"127.0.0.1\", port 5432 failed: server does not support SSL, but SSL was required",
         ["TLS switched off"]),
        ("connection to server at \"127.0.0.1\", port 5432 failed: Connection refused", ["is PostgreSQL running"]),
        ("connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \"relay\"",
         ["check the user and password"]),
        ("connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"relay\", SSL encryption",
         ["add a `replication` line"]),
    ])
    func advice(message: String, expected: [String]) {
        let explained = ConnectFailureAdvice.explain(message)
        #expect(explained.hasPrefix(message), "libpq's own text comes first")
        for phrase in expected { #expect(explained.contains(phrase), "\(explained)") }
    }

    @Test("a TLS refusal is not mistaken for a missing replication line")
    func tlsBeforeGenericHBA() {
        let explained = ConnectFailureAdvice.explain("FATAL:  no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"relay\", no encryption")
        #expect(!explained.contains("replication` line"), "\(explained)")
    }

    @Test("an unknown message is returned unchanged")
    func unknown() {
        #expect(ConnectFailureAdvice.explain("something new") == "something new")
    }
}
