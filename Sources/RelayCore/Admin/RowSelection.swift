public import PGOutput

/// Which outbox rows an operator command takes (`outbox-relay redrive`, `replay`), and the
/// SQL that reads them. Pure: the commands parse their flags into one of these, and the I/O
/// layer only runs the statements it builds.
///
/// Every user value travels as a bind parameter (`$n`); nothing the operator typed is ever
/// spliced into the SQL text, so a topic, type or reason can hold any character.
///
/// A selection is bounded on purpose: at least one selector, or an explicit `all`, so that a
/// forgotten flag never re-publishes the whole table.
public struct RowSelection: Sendable, Equatable {
    /// Rows of any of these topics (the row's `topic` column, before any route).
    public var topics: [String] = []
    /// Rows of any of these types (`type`).
    public var types: [String] = []
    /// Rows whose `last_error` contains this text, as typed (no wildcards): a dead-letter
    /// reason code such as `message_too_large`, or a part of the detail.
    public var reason: String?
    /// `outbox_id` at least / at most (both inclusive).
    public var fromID: Int64?
    public var toID: Int64?
    /// `created_at` at or after / before (RFC 3339 with an offset, checked by `init`).
    public var createdAfter: String?
    public var createdBefore: String?
    /// Every row (of `statuses`), chosen explicitly.
    public var all = false
    /// Only rows in these statuses; empty: any status. Set by the command, not the operator
    /// (redrive: DEAD).
    public var statuses: [String] = []
    /// The outbox table the rows are in (`--table`).
    public var table: OutboxTable = .default

    public init(topics: [String] = [], types: [String] = [], reason: String? = nil, fromID: Int64? = nil, toID: Int64? = nil,
                createdAfter: String? = nil, createdBefore: String? = nil, all: Bool = false, statuses: [String] = [],
                table: OutboxTable = .default) throws(SelectionError) {
        self.topics = topics; self.types = types; self.reason = reason; self.fromID = fromID; self.toID = toID
        self.createdAfter = createdAfter; self.createdBefore = createdBefore; self.all = all; self.statuses = statuses
        self.table = table
        try validate()
    }

    /// True when no selector is given (only `all` may then select rows).
    public var hasSelector: Bool {
        !topics.isEmpty || !types.isEmpty || reason != nil || fromID != nil || toID != nil || createdAfter != nil || createdBefore != nil
    }

    private func validate() throws(SelectionError) {
        if all && hasSelector {
            throw SelectionError("--all selects every row, and cannot be combined with a selector",
                                 fix: "drop --all to select by the other flags, or drop the selectors to take every row")
        }
        if !all && !hasSelector {
            throw SelectionError("no rows are selected",
                                 fix: "name at least one of --topic, --type, --reason, --from-id/--to-id, --created-after/--created-before, or pass --all")
        }
        for topic in topics where !Self.isTopicName(topic) {
            throw SelectionError("--topic \"\(Self.printable(topic))\" is not a topic name (letters, digits, '.', '_', '-'; 1 to 249 characters)",
                                 fix: "use the row's topic as stored in outbox.topic, e.g. --topic BOOK_SAVE")
        }
        for type in types where type.isEmpty {
            throw SelectionError("--type is empty", fix: "name the row type, e.g. --type BOOK_SAVE")
        }
        if let reason, reason.isEmpty {
            throw SelectionError("--reason is empty", fix: "give a dead-letter reason such as message_too_large, or a part of outbox.last_error")
        }
        for (flag, id) in [("--from-id", fromID), ("--to-id", toID)] {
            if let id, id < 0 { throw SelectionError("\(flag) \(id) is negative", fix: "outbox ids start at 1: give a positive id") }
        }
        if let fromID, let toID, fromID > toID {
            throw SelectionError("--from-id \(fromID) is after --to-id \(toID), so nothing is selected", fix: "swap them: --from-id \(toID) --to-id \(fromID)")
        }
        for (flag, time) in [("--created-after", createdAfter), ("--created-before", createdBefore)] {
            if let time, !Self.isTimestamp(time) {
                throw SelectionError("\(flag) \"\(Self.printable(time))\" is not an RFC 3339 time with an offset",
                                     fix: "write it like 2026-12-06T10:00:00Z or 2026-12-06T11:00:00+01:00")
            }
        }
    }

    /// The WHERE condition, its placeholders numbered from `$first`, and its parameters (all
    /// sent as text and cast by the server).
    public func predicate(first: Int = 1) -> SQLPredicate {
        var builder = SQLPredicate.Builder(next: first)
        if !statuses.isEmpty { builder.any("status", statuses) }
        if !topics.isEmpty { builder.any("topic", topics) }
        if !types.isEmpty { builder.any("type", types) }
        if let reason { builder.add("strpos(last_error, $) > 0", reason) }
        if let fromID { builder.add("outbox_id >= $::bigint", String(fromID)) }
        if let toID { builder.add("outbox_id <= $::bigint", String(toID)) }
        if let createdAfter { builder.add("created_at >= $::timestamptz", createdAfter) }
        if let createdBefore { builder.add("created_at < $::timestamptz", createdBefore) }
        return builder.predicate
    }

    /// The columns the commands read: the row as a record (`OutboxRow(stored:)`), its status
    /// and last error.
    public static let rowColumns = """
        outbox_id, topic, mq_key, type, payload::text AS payload, created_at::text AS created_at, trace_parent, status, last_error
        """

    /// One batch: the next `limit` selected rows after `afterID`, in outbox_id order, with
    /// the WAL insert position read in the same statement (so in the same snapshot: every row
    /// it returns committed before that position). $1 is `afterID`, $2 the limit.
    public func batchStatement(afterID: Int64, limit: Int) -> SQLPredicate {
        let condition = predicate(first: 3)
        return SQLPredicate(sql: """
            SELECT pg_current_wal_insert_lsn()::text AS watermark, \(Self.rowColumns)
            FROM \(table.sql) WHERE outbox_id > $1::bigint AND \(condition.sql) ORDER BY outbox_id LIMIT $2::int
            """, parameters: [String(afterID), String(limit)] + condition.parameters)
    }

    /// The dry run's summary: per topic, status and dead-letter reason (`last_error` up to
    /// its first colon), how many rows and their first and last id.
    public func summaryStatement(afterID: Int64) -> SQLPredicate {
        let condition = predicate(first: 2)
        return SQLPredicate(sql: """
            SELECT topic, status, COALESCE(split_part(last_error, ':', 1), '') AS reason, count(*)::int8 AS n,
                   min(outbox_id) AS first_id, max(outbox_id) AS last_id
            FROM \(table.sql) WHERE outbox_id > $1::bigint AND \(condition.sql) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """, parameters: [String(afterID)] + condition.parameters)
    }

    /// The dry run's first rows: no payload (it may hold personal data), the error cut short.
    public func sampleStatement(afterID: Int64, limit: Int) -> SQLPredicate {
        let condition = predicate(first: 3)
        return SQLPredicate(sql: """
            SELECT outbox_id, topic, mq_key, type, status, created_at::text AS created_at, left(last_error, 120) AS last_error
            FROM \(table.sql) WHERE outbox_id > $1::bigint AND \(condition.sql) ORDER BY outbox_id LIMIT $2::int
            """, parameters: [String(afterID), String(limit)] + condition.parameters)
    }

    /// Kafka's topic rule, which the outbox's CHECK constraint also applies.
    static func isTopicName(_ name: String) -> Bool {
        (1...249).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }
    }

    /// `YYYY-MM-DD[T ]HH:MM[:SS[.fraction]]` then `Z` or `±HH[:MM]`. The offset is required:
    /// without one the server's time zone would decide which rows move.
    static func isTimestamp(_ text: String) -> Bool {
        var scanner = Array(text.utf8)[...]
        func digits(_ count: Int) -> Bool {
            guard scanner.count >= count, scanner.prefix(count).allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return false }
            scanner = scanner.dropFirst(count)
            return true
        }
        func literal(_ characters: String) -> Bool {
            guard let first = scanner.first, characters.utf8.contains(first) else { return false }
            scanner = scanner.dropFirst()
            return true
        }
        guard digits(4), literal("-"), digits(2), literal("-"), digits(2), literal("Tt "), digits(2), literal(":"), digits(2) else { return false }
        if literal(":") {
            guard digits(2) else { return false }
            if literal(".") {
                guard digits(1) else { return false }
                while digits(1) {}
            }
        }
        if literal("Zz") { return scanner.isEmpty }
        guard literal("+-"), digits(2) else { return false }
        if literal(":") { guard digits(2) else { return false } }
        return scanner.isEmpty
    }

    /// A value echoed in an error: control characters shown as `?`, cut to 100 characters.
    static func printable(_ text: String) -> String {
        String(String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : Character($0) }).prefix(100))
    }
}

/// A SQL condition and its bind parameters, in placeholder order.
public struct SQLPredicate: Sendable, Equatable {
    public var sql: String
    /// `$n` is `parameters[n - first]`, sent as text.
    public var parameters: [String]

    public init(sql: String, parameters: [String]) {
        self.sql = sql
        self.parameters = parameters
    }

    /// Adds conditions with fresh placeholders; `$` in a condition is its one parameter.
    struct Builder {
        var next: Int
        var conditions: [String] = []
        var parameters: [String] = []

        mutating func add(_ condition: String, _ value: String) {
            conditions.append(condition.split(separator: "$", omittingEmptySubsequences: false).joined(separator: "$\(next)"))
            parameters.append(value)
            next += 1
        }

        /// `column IN ($a, $b, …)`, one placeholder per value.
        mutating func any(_ column: String, _ values: [String]) {
            let placeholders = values.indices.map { "$\(next + $0)" }
            conditions.append("\(column) IN (\(placeholders.joined(separator: ", ")))")
            parameters += values
            next += values.count
        }

        var predicate: SQLPredicate {
            SQLPredicate(sql: conditions.isEmpty ? "TRUE" : conditions.joined(separator: " AND "), parameters: parameters)
        }
    }
}

/// A selection the commands refuse: the problem and the fix (exit 64).
public struct SelectionError: Error, Equatable, CustomStringConvertible {
    public var problem: String
    public var fix: String
    public init(_ problem: String, fix: String) {
        self.problem = problem
        self.fix = fix
    }
    public var description: String { "\(problem). Fix: \(fix)." }
}
