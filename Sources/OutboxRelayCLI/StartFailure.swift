import KafkaClient
import PostgresClient

/// A connection that failed at start, as the CLI reports it: one cause, one fix, and the
/// exit status that tells a supervisor whether a retry can help. A server that does not
/// answer exits 69 (EX_UNAVAILABLE: start again later); a server that answers and refuses
/// the TLS or credential settings exits 78 (EX_CONFIG: retrying alone never helps).
/// Shared by every command that connects, so they cannot drift apart.
enum StartFailure {
    static func postgres(_ error: any Error) -> CLIError {
        guard let error = error as? PGError, error.code == .connectionFailed else {
            return CLIError("PostgreSQL is not reachable: \(error). Fix: check database-url, that the server runs, and pg_hba.conf.",
                            status: .unavailable)
        }
        let server = "PostgreSQL" + (error.target.map { " at \($0)" } ?? "")
        // libpq's own text goes in parentheses: it names the server and its wording, not a fix.
        let libpq = error.message.split(whereSeparator: \.isNewline).joined(separator: " ")
        guard let advice = error.connectFailure else {
            return CLIError("\(server) is not reachable (libpq: \(libpq)). Fix: check database-url, that the server runs, and pg_hba.conf.",
                            status: .unavailable)
        }
        switch advice.kind {
        case .configuration:
            return CLIError("\(server) refused the connection: \(advice.cause) (libpq: \(libpq)). Fix: \(advice.fix)",
                            status: .operatorNeeded)
        case .unreachable:
            return CLIError("\(server) is not reachable: \(advice.cause) (libpq: \(libpq)). Fix: \(advice.fix)", status: .unavailable)
        }
    }

    /// Kafka's messages already carry their fix (`KafkaSecurityFailure`, `checkConnectivity`).
    static func kafka(_ error: any Error) -> CLIError {
        if let error = error as? KafkaError, error.code == .authentication || error.code == .tls {
            return CLIError("\(error)", status: .operatorNeeded)
        }
        return CLIError("\(error)", status: .unavailable)
    }
}
