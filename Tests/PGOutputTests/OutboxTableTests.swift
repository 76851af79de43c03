import PGOutput
import Testing

@Suite("Outbox table names")
struct OutboxTableTests {
    @Test("schema.table and a bare table (in public) parse; SQL quotes both parts", arguments: [
        ("team_a.outbox", "team_a", "outbox"), ("outbox", "public", "outbox"), ("_x.y$1", "_x", "y$1"),
    ])
    func parses(text: String, schema: String, name: String) throws {
        let table = try OutboxTable(parsing: text)
        #expect(table.schema == schema && table.name == name)
        #expect(table.sql == "\"\(schema)\".\"\(name)\"")
        #expect(table.qualifiedName == "\(schema).\(name)")
    }

    @Test("names that are not plain lower-case identifiers are refused with the rule", arguments: [
        "", ".outbox", "team_a.", "a.b.c", "Team.outbox", "team-a.outbox", "1team.outbox", "team.out box",
        "a.\"x\"", "a.x;drop", String(repeating: "a", count: 64) + ".outbox",
    ])
    func refuses(text: String) {
        let error = #expect(throws: OutboxTableNameError.self) { try OutboxTable(parsing: text) }
        #expect(error?.description.contains(String(reflecting: text)) == true)
    }

    @Test("a list: spaces trimmed, order kept, a duplicate or an empty list refused")
    func list() throws {
        #expect(try OutboxTable.parseList(" public.outbox , team_a.outbox").map(\.qualifiedName) == ["public.outbox", "team_a.outbox"])
        #expect(try OutboxTable.parseList("outbox") == [.default])
        let twice = #expect(throws: OutboxTableNameError.self) { try OutboxTable.parseList("outbox,public.outbox") }
        #expect(twice?.reason.contains("twice") == true)
        #expect(throws: OutboxTableNameError.self) { try OutboxTable.parseList(" , ") }
    }
}
