import PGOutput
import Schema
import Testing

/// The outbox shape check without a server: a catalog description in, the problems out.
@Suite("Outbox shape")
struct OutboxShapeTests {
    static let teamB = try! OutboxTable(parsing: "team_b.outbox")

    /// public.outbox as the catalog describes it after the migrations (and a table made by
    /// outbox-table.sql): the integration tests read both and check they pass.
    static let good = OutboxShape.Found(kind: "r", columns: [
        .init(name: "outbox_id", type: "bigint", notNull: true, hasDefault: true),
        .init(name: "topic", type: "text", notNull: true, hasDefault: false),
        .init(name: "mq_key", type: "text", notNull: true, hasDefault: false),
        .init(name: "type", type: "text", notNull: true, hasDefault: false),
        .init(name: "status", type: "text", notNull: true, hasDefault: true),
        .init(name: "payload", type: "jsonb", notNull: true, hasDefault: false),
        .init(name: "created_at", type: "timestamp with time zone", notNull: true, hasDefault: true),
        .init(name: "attempts", type: "integer", notNull: true, hasDefault: true),
        .init(name: "last_sent_at", type: "timestamp with time zone", notNull: false, hasDefault: false),
        .init(name: "last_error", type: "text", notNull: false, hasDefault: false),
        .init(name: "trace_parent", type: "text", notNull: false, hasDefault: false),
    ], primaryKey: .init(name: "outbox_pkey", columns: ["outbox_id"]))

    static func changing(_ name: String, _ change: (inout OutboxShape.Column) -> Void) -> OutboxShape.Found {
        var found = good
        let i = found.columns.firstIndex { $0.name == name }!
        change(&found.columns[i])
        return found
    }

    static func without(_ name: String) -> OutboxShape.Found {
        var found = good
        found.columns.removeAll { $0.name == name }
        return found
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var found: OutboxShape.Found?
        /// (column, found, fix) of each expected problem, in order.
        var expected: [(column: String?, found: String, fix: String)]
        var testDescription: String { label }
    }

    static let alter = "ALTER TABLE \"team_b\".\"outbox\""

    static let cases: [Case] = [
        Case(label: "the outbox's shape", found: good, expected: []),
        Case(label: "without the optional trace_parent", found: without("trace_parent"), expected: []),
        Case(label: "extra columns are the team's business", found: {
            var found = good
            found.columns.append(.init(name: "tenant", type: "uuid", notNull: true, hasDefault: false))
            return found
        }(), expected: []),
        Case(label: "no such table", found: nil, expected: [
            (nil, "no such table", "run `outbox-relay migrate --schema team_b`, or remove team_b.outbox from outbox-tables.")]),
        Case(label: "mq_key missing", found: without("mq_key"), expected: [
            ("mq_key", "no such column", "\(alter) ADD COLUMN mq_key text NOT NULL;")]),
        Case(label: "status missing: added with its default", found: without("status"), expected: [
            ("status", "no such column", "\(alter) ADD COLUMN status text NOT NULL DEFAULT 'INIT';")]),
        Case(label: "last_error missing: nullable", found: without("last_error"), expected: [
            ("last_error", "no such column", "\(alter) ADD COLUMN last_error text;")]),
        Case(label: "payload text instead of jsonb", found: changing("payload") { $0.type = "text" }, expected: [
            ("payload", "type text", "\(alter) ALTER COLUMN payload TYPE jsonb USING payload::jsonb;")]),
        Case(label: "created_at without time zone", found: changing("created_at") { $0.type = "timestamp without time zone" }, expected: [
            ("created_at", "type timestamp without time zone",
             "\(alter) ALTER COLUMN created_at TYPE timestamp with time zone USING created_at::timestamp with time zone;")]),
        Case(label: "topic varchar", found: changing("topic") { $0.type = "character varying(100)" }, expected: [
            ("topic", "type character varying(100)", "\(alter) ALTER COLUMN topic TYPE text USING topic::text;")]),
        Case(label: "trace_parent present with the wrong type", found: changing("trace_parent") { $0.type = "jsonb" }, expected: [
            ("trace_parent", "type jsonb", "\(alter) ALTER COLUMN trace_parent TYPE text USING trace_parent::text;")]),
        Case(label: "nullable mq_key", found: changing("mq_key") { $0.notNull = false }, expected: [
            ("mq_key", "nullable", "\(alter) ALTER COLUMN mq_key SET NOT NULL;")]),
        Case(label: "NOT NULL last_error (re-drive clears it)", found: changing("last_error") { $0.notNull = true }, expected: [
            ("last_error", "NOT NULL", "\(alter) ALTER COLUMN last_error DROP NOT NULL;")]),
        Case(label: "status without a default", found: changing("status") { $0.hasDefault = false }, expected: [
            ("status", "no default", "\(alter) ALTER COLUMN status SET DEFAULT 'INIT';")]),
        Case(label: "outbox_id without a default", found: changing("outbox_id") { $0.hasDefault = false }, expected: [
            ("outbox_id", "no default", "\(alter) ALTER COLUMN outbox_id ADD GENERATED BY DEFAULT AS IDENTITY;")]),
        Case(label: "no primary key", found: {
            var found = good
            found.primaryKey = nil
            return found
        }(), expected: [("outbox_id", "no primary key", "\(alter) ADD PRIMARY KEY (outbox_id);")]),
        Case(label: "a primary key on other columns", found: {
            var found = good
            found.primaryKey = .init(name: "Outbox Key", columns: ["outbox_id", "topic"])
            return found
        }(), expected: [("outbox_id", "primary key Outbox Key (outbox_id, topic)",
                         "\(alter) DROP CONSTRAINT \"Outbox Key\", ADD PRIMARY KEY (outbox_id);")]),
        Case(label: "a partitioned table", found: {
            var found = good
            found.kind = "p"
            return found
        }(), expected: [(nil, "a partitioned table", "keep the outbox in an ordinary table: `outbox-relay migrate --schema team_b` creates one where no relation of that name exists.")]),
        Case(label: "several problems at once, in column order", found: {
            var found = without("mq_key")
            found.columns[found.columns.firstIndex { $0.name == "payload" }!].type = "json"
            found.primaryKey = nil
            return found
        }(), expected: [
            ("mq_key", "no such column", "\(alter) ADD COLUMN mq_key text NOT NULL;"),
            ("payload", "type json", "\(alter) ALTER COLUMN payload TYPE jsonb USING payload::jsonb;"),
            ("outbox_id", "no primary key", "\(alter) ADD PRIMARY KEY (outbox_id);"),
        ]),
    ]

    @Test("each shape gives exactly its problems, each naming the table, column, what was found and the fix", arguments: cases)
    func problems(_ example: Case) {
        let problems = OutboxShape.problems(of: Self.teamB, found: example.found)
        #expect(problems.map(\.column) == example.expected.map(\.column))
        #expect(problems.map(\.found) == example.expected.map(\.found))
        #expect(problems.map(\.fix) == example.expected.map(\.fix))
        #expect(problems.allSatisfy { $0.table == Self.teamB && !$0.needed.isEmpty })
    }

    @Test("a problem reads: table, column, found, needed, fix")
    func problemText() {
        let problem = OutboxShape.problems(of: Self.teamB, found: Self.changing("payload") { $0.type = "text" })[0]
        #expect(problem.description
            == "team_b.outbox column payload: found type text; needed type jsonb. Fix: ALTER TABLE \"team_b\".\"outbox\" ALTER COLUMN payload TYPE jsonb USING payload::jsonb;")
    }

    @Test("verify throws one error listing every table's problems, with migrate as the way out for an empty table")
    func verify() throws {
        let teamA = try OutboxTable(parsing: "team_a.orders_outbox")
        let teamC = try OutboxTable(parsing: "team_c.outbox")
        try OutboxShape.verify([.default], found: [.default: Self.good])
        let error = #expect(throws: OutboxShapeError.self) {
            try OutboxShape.verify([.default, Self.teamB, teamA, teamC],
                                   found: [.default: Self.good, Self.teamB: Self.without("mq_key"), teamA: Self.without("payload")])
        }
        let text = error.map { "\($0)" } ?? ""
        #expect(error?.problems.map(\.table) == [Self.teamB, teamA, teamC])
        #expect(text.hasPrefix("3 problems with outbox tables team_b.outbox, team_a.orders_outbox, team_c.outbox"), "\(text)")
        #expect(text.contains("team_b.outbox column mq_key: found no such column"), "\(text)")
        #expect(text.contains("team_c.outbox: found no such table"), "\(text)")
        #expect(text.contains("`outbox-relay migrate --schema team_c`"), "\(text)")
        // The drop-and-migrate way out is offered for the tables that exist, with --table
        // when the name is not outbox.
        #expect(text.hasSuffix("drop it and let migrate create it: `outbox-relay migrate --schema team_b`, `outbox-relay migrate --schema team_a --table orders_outbox`."), "\(text)")
    }

    @Test("every requirement is a column of the template's shape, of the same type, nullability and default presence")
    func requirementsMatchTheShape() {
        let byName = Dictionary(uniqueKeysWithValues: Self.good.columns.map { ($0.name, $0) })
        for requirement in OutboxShape.requirements {
            let column = byName[requirement.column]
            #expect(column?.type == requirement.type, "\(requirement.column)")
            #expect(column?.notNull == requirement.notNull, "\(requirement.column)")
            #expect(requirement.requiredDefault == nil || column?.hasDefault == true, "\(requirement.column)")
        }
    }

    @Test("the template binds the schema and table, and names indexes after the table")
    func template() throws {
        let sql = OutboxTableTemplate.sql(for: try OutboxTable(parsing: "team_a.orders_outbox"))
        #expect(sql.contains("CREATE SCHEMA IF NOT EXISTS \"team_a\";"))
        #expect(sql.contains("CREATE TABLE IF NOT EXISTS \"team_a\".\"orders_outbox\" ("))
        #expect(sql.contains("CREATE INDEX IF NOT EXISTS \"orders_outbox_init_created_at\" ON \"team_a\".\"orders_outbox\""))
        #expect(!sql.contains("{schema}") && !sql.contains("{table}"))
    }
}
