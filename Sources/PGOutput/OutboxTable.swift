/// One outbox-shaped table the relay captures and the consumers and the sweeper write,
/// named by schema and table: `public.outbox` (the default), `team_a.outbox`, ...
///
/// Names are restricted to PostgreSQL's unquoted form, lower case (`[a-z_][a-z0-9_$]*`,
/// at most 63 bytes), so that the name a team writes in a setting, the one PostgreSQL
/// reports in a Relation message and the one a record carries in its `outbox-table`
/// header are the same text, and no name can smuggle SQL into a statement. Pure.
public struct OutboxTable: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let schema: String
    public let name: String

    /// The table every relay captured before several tables existed, and still the
    /// default: records of it carry no `outbox-table` header, as before.
    public static let `default` = OutboxTable(validSchema: "public", name: "outbox")

    /// The longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
    static let maxIdentifierBytes = 63

    init(validSchema schema: String, name: String) { self.schema = schema; self.name = name }

    /// Parses `schema.table`, or `table` (in `public`).
    public init(parsing text: String) throws(OutboxTableNameError) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2, !text.isEmpty else {
            throw OutboxTableNameError(text: text, reason: "is not a table name; write schema.table, e.g. team_a.outbox")
        }
        let schema = parts.count == 2 ? parts[0] : "public", name = parts[parts.count - 1]
        try Self.check(schema, in: text, role: "schema")
        try Self.check(name, in: text, role: "table")
        self.init(validSchema: schema, name: name)
    }

    /// `schema.table`, as settings, logs and the `outbox-table` header write it.
    public var qualifiedName: String { schema + "." + name }
    public var description: String { qualifiedName }

    /// The table in SQL, both parts quoted (safe by construction, quoted all the same so a
    /// reserved word such as `order` still works).
    public var sql: String { "\"\(schema)\".\"\(name)\"" }

    /// Whether a Relation message (namespace and name as the server sends them) is this table.
    public func matches(namespace: String, relation: String) -> Bool { namespace == schema && relation == name }

    public static func < (a: OutboxTable, b: OutboxTable) -> Bool { (a.schema, a.name) < (b.schema, b.name) }

    /// Parses a comma-separated list (the `outbox-tables` setting): at least one table, no
    /// table twice.
    public static func parseList(_ text: String) throws(OutboxTableNameError) -> [OutboxTable] {
        let items = text.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        guard !items.isEmpty else {
            throw OutboxTableNameError(text: text, reason: "names no table; give at least one, e.g. public.outbox")
        }
        var tables: [OutboxTable] = []
        for item in items {
            let table = try OutboxTable(parsing: item)
            guard !tables.contains(table) else {
                throw OutboxTableNameError(text: item, reason: "is listed twice; name each table once")
            }
            tables.append(table)
        }
        return tables
    }

    private static func check(_ part: String, in text: String, role: String) throws(OutboxTableNameError) {
        guard !part.isEmpty else {
            throw OutboxTableNameError(text: text, reason: "has an empty \(role) name; write schema.table, e.g. team_a.outbox")
        }
        guard part.utf8.count <= maxIdentifierBytes else {
            throw OutboxTableNameError(text: text, reason: "has a \(role) name of \(part.utf8.count) bytes; PostgreSQL keeps at most \(maxIdentifierBytes)")
        }
        let bytes = Array(part.utf8)
        let first = bytes[0]
        let startsWell = (first >= UInt8(ascii: "a") && first <= UInt8(ascii: "z")) || first == UInt8(ascii: "_")
        let restWell = bytes.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "$")
        }
        guard startsWell && restWell else {
            throw OutboxTableNameError(text: text, reason: "has the \(role) name \(String(reflecting: part)); use lower-case letters, digits and _ (starting with a letter or _), as PostgreSQL folds unquoted names")
        }
    }
}

/// An `outbox-tables` entry (or `--table`, `--schema`) that is not a usable table name.
public struct OutboxTableNameError: Error, Sendable, Equatable, CustomStringConvertible {
    public let text: String
    public let reason: String
    public var description: String { "outbox table \(String(reflecting: text)) \(reason)" }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
