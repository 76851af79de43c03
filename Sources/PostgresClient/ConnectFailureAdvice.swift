/// Turns libpq's connect-failure text into a message that names the cause and the fix.
///
/// libpq's messages are accurate but speak its own terms ("certificate verify failed",
/// "no pg_hba.conf entry ... no encryption"); an operator needs to know which connection
/// setting to change. Pure, so every mapping is unit-tested against the exact wording of
/// libpq 15 without a server. The original text is always kept in front.
public enum ConnectFailureAdvice {
    public static func explain(_ message: String) -> String {
        guard let fix = fix(for: message) else { return message }
        return message + " — " + fix
    }

    /// The cause and fix for a libpq message, or nil when there is nothing to add.
    static func fix(for message: String) -> String? {
        // TLS first: a refused TLS connection also mentions pg_hba.conf or SSL in passing.
        if message.contains("does not match host name") {
            return "TLS: the server's certificate was not issued for the host name in the postgres URL. "
                + "Fix: connect with a host name listed in the certificate (hostaddr= can still pin the IP address), "
                + "or reissue the server certificate with this name."
        }
        if message.contains("certificate verify failed") {
            return "TLS: the server's certificate is not signed by a CA in sslrootcert. "
                + "Fix: check sslrootcert points to the CA that issued the server certificate."
        }
        if message.contains("root certificate file") && message.contains("does not exist") {
            return "TLS: sslmode=verify-ca/verify-full needs the CA certificate. "
                + "Fix: set sslrootcert=/path/to/ca.crt in the postgres URL."
        }
        if message.contains("server does not support SSL") {
            return "TLS: the server has TLS switched off. Fix: enable ssl on the server, or use a lower sslmode only on a trusted network."
        }
        if message.contains("pg_hba.conf"), message.contains("no encryption") || message.contains("SSL off") {
            return "the server accepts only TLS connections from here (hostssl in pg_hba.conf), and this one was unencrypted. "
                + "Fix: use sslmode=verify-full with sslrootcert (or sslmode=require) in the postgres URL."
        }
        if message.contains("Connection refused") {
            return "is PostgreSQL running and listening on that host and port? Check the postgres URL."
        }
        if message.contains("timeout expired") {
            return "the host did not answer in time; check the host, port and any firewall."
        }
        if message.contains("password authentication failed") || message.contains("no password supplied") {
            return "check the user and password in the postgres URL or the PGPASSWORD/.pgpass settings."
        }
        if message.contains("replication connection") || message.contains("pg_hba.conf") {
            return "allow this role in pg_hba.conf (for stream mode add a `replication` line) and reload."
        }
        return nil
    }
}
