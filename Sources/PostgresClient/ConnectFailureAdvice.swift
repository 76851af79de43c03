/// Turns libpq's connect-failure text into one cause and one fix, and says whether trying
/// again later can help.
///
/// libpq's messages are accurate but speak its own terms ("certificate verify failed",
/// "no pg_hba.conf entry ... no encryption"); an operator needs to know which connection
/// setting to change. Pure, so every mapping is unit-tested against the exact wording of
/// libpq 15 without a server.
public struct ConnectFailureAdvice: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The server did not answer (down, starting, unreachable): trying later may work.
        case unreachable
        /// The server answered and refused this client's settings (TLS, credentials,
        /// pg_hba.conf, database name): retrying cannot help until someone changes them.
        case configuration
    }

    public var kind: Kind
    /// What went wrong, in the operator's terms.
    public var cause: String
    /// The one thing to change. Never contains a credential.
    public var fix: String

    init(_ kind: Kind, _ cause: String, fix: String) {
        self.kind = kind
        self.cause = cause
        self.fix = fix
    }

    /// The cause and fix for a libpq message, or nil when the message is not recognised.
    public static func classify(_ message: String) -> ConnectFailureAdvice? {
        // TLS first: a refused TLS connection also mentions pg_hba.conf or SSL in passing.
        if message.contains("does not match host name") {
            return .init(.configuration, "TLS: the server's certificate was not issued for the host name in the postgres URL",
                         fix: "connect with a host name listed in the certificate (hostaddr= can still pin the IP address), "
                             + "or reissue the server certificate with this name.")
        }
        if message.contains("certificate verify failed") {
            return .init(.configuration, "TLS: the server's certificate is not signed by a CA in sslrootcert",
                         fix: "point sslrootcert at the CA that issued the server certificate.")
        }
        if message.contains("root certificate file") && message.contains("does not exist") {
            return .init(.configuration, "TLS: sslmode=verify-ca/verify-full needs the CA certificate, and there is none",
                         fix: "set sslrootcert=/path/to/ca.crt in the postgres URL.")
        }
        if message.contains("server does not support SSL") {
            return .init(.configuration, "TLS: the server has TLS switched off",
                         fix: "enable ssl on the server, or use a lower sslmode only on a trusted network.")
        }
        if message.contains("pg_hba.conf"), message.contains("no encryption") || message.contains("SSL off") {
            return .init(.configuration, "the server accepts only TLS connections from here (hostssl in pg_hba.conf), and this one was unencrypted",
                         fix: "use sslmode=verify-full with sslrootcert (or sslmode=require) in the postgres URL.")
        }
        if message.contains("password authentication failed") || message.contains("no password supplied") {
            return .init(.configuration, "the server refused the user's password",
                         fix: "check the user and password in the postgres URL or the PGPASSWORD/.pgpass settings.")
        }
        if message.contains("pg_hba.conf") {
            return .init(.configuration, "pg_hba.conf has no line that lets this role connect from here",
                         fix: "allow this role in pg_hba.conf (for stream mode add a `replication` line) and reload.")
        }
        if message.contains("database \""), message.contains("does not exist") {
            return .init(.configuration, "the database named in the postgres URL does not exist",
                         fix: "name an existing database in the postgres URL, or create it.")
        }
        if message.contains("role \""), message.contains("does not exist") {
            return .init(.configuration, "the user named in the postgres URL does not exist on the server",
                         fix: "name an existing role in the postgres URL, or create it (sql/roles.sql).")
        }
        if message.contains("Connection refused") {
            return .init(.unreachable, "nothing accepts connections at that host and port",
                         fix: "start PostgreSQL, or correct the host and port in the postgres URL.")
        }
        if message.contains("timeout expired") || message.contains("No route to host") || message.contains("Network is unreachable") {
            return .init(.unreachable, "the host did not answer in time",
                         fix: "check the host and port in the postgres URL, and any firewall between.")
        }
        if message.contains("could not translate host name") {
            return .init(.unreachable, "the host name in the postgres URL does not resolve",
                         fix: "correct the host name, or check DNS.")
        }
        if message.contains("the database system is") {  // starting up, shutting down, in recovery mode
            return .init(.unreachable, "the server is not accepting connections right now",
                         fix: "wait for it to finish starting (or recovering), then start again.")
        }
        return nil
    }

    /// libpq's text followed by the cause and the fix, for logs and errors.
    public static func explain(_ message: String) -> String {
        guard let advice = classify(message) else { return message }
        return "\(message) — \(advice.cause). Fix: \(advice.fix)"
    }
}
