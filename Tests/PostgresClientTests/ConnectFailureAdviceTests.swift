@testable import PostgresClient
import Foundation
import Testing

/// libpq 15's connect-failure wording (its message templates, filled in) mapped to one
/// cause, one fix, and whether trying again later can help.
@Suite("Connect-failure advice")
struct ConnectFailureAdviceTests {
    static let server = "connection to server at \"127.0.0.1\", port 5432 failed: "

    @Test("each libpq failure gets one cause and one fix, and a kind: refused settings are configuration, silence is unreachable", arguments: [
        ("SSL error: certificate verify failed",
         ConnectFailureAdvice.Kind.configuration, ["not signed by a CA in sslrootcert", "point sslrootcert"]),
        ("server certificate for \"db.outbox.test\" does not match host name \"127.0.0.1\"",
         .configuration, ["not issued for the host name", "connect with a host name listed in the certificate"]),
        ("server certificate for \"db.outbox.test\" (and 1 other name) does not match host name \"wrong.test\"",
         .configuration, ["not issued for the host name"]),
        ("FATAL:  no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"app\", no encryption",
         .configuration, ["accepts only TLS connections", "sslmode=verify-full", "sslmode=require"]),
        ("FATAL:  no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"relay\", no encryption",
         .configuration, ["accepts only TLS connections", "sslmode=verify-full"]),
        ("root certificate file \"/root/.postgresql/root.crt\" does not exist\nEither provide the file or change sslmode to disable server certificate verification.",
         .configuration, ["set sslrootcert="]),
        ("server does not support SSL, but SSL was required", .configuration, ["TLS switched off"]),
        ("FATAL:  password authentication failed for user \"relay\"", .configuration, ["check the user and password"]),
        ("fe_sendauth: no password supplied", .configuration, ["check the user and password"]),
        ("FATAL:  no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"relay\", SSL encryption",
         .configuration, ["add a `replication` line"]),
        ("FATAL:  database \"app\" does not exist", .configuration, ["database named in the postgres URL does not exist"]),
        ("FATAL:  role \"relay\" does not exist", .configuration, ["user named in the postgres URL does not exist"]),
        ("Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?", .unreachable, ["start PostgreSQL"]),
        ("timeout expired", .unreachable, ["did not answer in time"]),
        ("FATAL:  the database system is starting up", .unreachable, ["not accepting connections right now"]),
    ])
    func advice(message: String, kind: ConnectFailureAdvice.Kind, expected: [String]) throws {
        let advice = try #require(ConnectFailureAdvice.classify(Self.server + message))
        #expect(advice.kind == kind)
        let explained = ConnectFailureAdvice.explain(Self.server + message)
        #expect(explained.hasPrefix(Self.server + message), "libpq's own text comes first")
        for phrase in expected { #expect(explained.contains(phrase), "\(explained)") }
        #expect(explained.components(separatedBy: "Fix:").count == 2, "one fix: \(explained)")
    }

    @Test("a TLS refusal is not mistaken for a missing replication line")
    func tlsBeforeGenericHBA() {
        let explained = ConnectFailureAdvice.explain("FATAL:  no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"relay\", no encryption")
        #expect(!explained.contains("replication` line"), "\(explained)")
    }

    @Test("an unknown message is returned unchanged, with no advice")
    func unknown() {
        #expect(ConnectFailureAdvice.explain("something new") == "something new")
        #expect(ConnectFailureAdvice.classify("something new") == nil)
    }

    @Test("a connection failure's description carries the advice once; other errors none")
    func pgErrorDescription() {
        let failed = PGError(code: .connectionFailed, message: Self.server + "SSL error: certificate verify failed", target: "127.0.0.1:5432/app")
        #expect(failed.connectFailure?.kind == .configuration)
        #expect("\(failed)".components(separatedBy: "Fix:").count == 2, "\(failed)")
        let query = PGError(code: .queryFailed, message: "certificate verify failed")
        #expect(query.connectFailure == nil)
    }
}
