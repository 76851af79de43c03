public import PGOutput
public import PostgresClient

/// Least-privilege roles for the relay and the consumers: creates them when missing and
/// applies `sql/roles.sql`, the same file ops teams can run with psql.
public struct SchemaRoles: Sendable {
    public var relayRole: String
    public var consumerRole: String

    public init(relayRole: String = "outbox_relay", consumerRole: String = "outbox_consumer") {
        self.relayRole = relayRole; self.consumerRole = consumerRole
    }

    /// Creates missing roles (relay: LOGIN REPLICATION; consumers: LOGIN) with the given
    /// passwords, then grants. Needs a superuser or CREATEROLE, and the tables' owner.
    public func apply(on connection: PGConnection, relayPassword: String?, consumerPassword: String?) async throws {
        try await ensureRole(relayRole, attributes: "LOGIN REPLICATION", password: relayPassword, on: connection)
        try await ensureRole(consumerRole, attributes: "LOGIN", password: consumerPassword, on: connection)
        try await connection.executeScript(grantScript)
    }

    /// The grants `roles.sql` gives on public.outbox, on an outbox table in another schema
    /// (`outbox-table-roles.sql`). The roles must exist (`apply` creates them).
    public func grant(_ table: OutboxTable, on connection: PGConnection) async throws {
        try await connection.executeScript(grantScript(for: table))
    }

    /// `roles.sql` with its psql variables bound to quoted identifiers.
    public var grantScript: String { bind(PackageResources.roles_sql) }

    /// `outbox-table-roles.sql` with its psql variables bound to quoted identifiers.
    public func grantScript(for table: OutboxTable) -> String {
        bind(PackageResources.outbox_table_roles_sql)
            .replacingOccurrences(of: ":\"schema\"", with: quoteIdentifier(table.schema))
            .replacingOccurrences(of: ":\"table\"", with: quoteIdentifier(table.name))
    }

    private func bind(_ file: [UInt8]) -> String {
        String(decoding: file, as: UTF8.self)
            .replacingOccurrences(of: ":\"relay_role\"", with: quoteIdentifier(relayRole))
            .replacingOccurrences(of: ":\"consumer_role\"", with: quoteIdentifier(consumerRole))
    }

    private func ensureRole(_ name: String, attributes: String, password: String?, on connection: PGConnection) async throws {
        let exists = try await connection.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [.text(name)])
        let verb = exists.rows.isEmpty ? "CREATE" : "ALTER"
        // Role DDL takes no bind parameters; the name and password are quoted, never spliced raw.
        let passwordClause = password.map { " PASSWORD \(quoteLiteral($0))" } ?? ""
        try await connection.query("\(verb) ROLE \(quoteIdentifier(name)) \(attributes)\(passwordClause)")
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
