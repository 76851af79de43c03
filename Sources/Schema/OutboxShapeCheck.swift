public import PGOutput
public import PostgresClient

/// Reads outbox tables from the catalog and checks them against `OutboxShape`: what
/// `migrate` runs before it touches a table, and the relay at its start. The I/O only; the
/// decision is `OutboxShape`'s.
public enum OutboxShapeCheck {
    /// Throws `OutboxShapeError` listing every problem of every table, a missing table
    /// included.
    public static func check(_ tables: [OutboxTable], on connection: PGConnection) async throws {
        var found: [OutboxTable: OutboxShape.Found] = [:]
        for table in tables { found[table] = try await read(table, on: connection) }
        try OutboxShape.verify(tables, found: found)
    }

    /// The table as the catalog describes it; nil when no relation of that name exists.
    public static func read(_ table: OutboxTable, on connection: PGConnection) async throws -> OutboxShape.Found? {
        try parse(try await connection.query(catalogQuery, parameters(table)))
    }

    static func parameters(_ table: OutboxTable) -> [PGValue] { [.text(table.schema), .text(table.name)] }

    /// One row per column (one row with NULL columns for a table without any; none when the
    /// relation does not exist). By name, not `to_regclass`: that one fails for a schema
    /// the role may not use, and the catalog is readable by every role.
    static let catalogQuery = """
        SELECT c.relkind::text AS kind, a.attname::text AS column_name,
               format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
               (a.atthasdef OR a.attidentity <> '') AS has_default,
               pk.conname::text AS primary_key, a.attnum = ANY (pk.conkey) AS in_primary_key
        FROM pg_class c
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
        WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND c.relname = $2
        ORDER BY a.attnum
        """

    static func parse(_ result: PGResult) throws -> OutboxShape.Found? {
        guard let first = result.rows.first else { return nil }
        var found = OutboxShape.Found(kind: try first.string("kind"), columns: [], primaryKey: nil)
        var keyColumns: [String] = []
        for row in result.rows {
            guard let name = try row.optionalString("column_name") else { continue }
            found.columns.append(OutboxShape.Column(name: name, type: try row.string("type"), notNull: try row.bool("not_null"),
                                                    hasDefault: try row.bool("has_default")))
            if try !row.isNull("in_primary_key"), try row.bool("in_primary_key") { keyColumns.append(name) }
        }
        if let key = try first.optionalString("primary_key") {
            found.primaryKey = OutboxShape.PrimaryKey(name: key, columns: keyColumns)
        }
        return found
    }
}
