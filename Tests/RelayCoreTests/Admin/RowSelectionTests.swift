import RelayCore
import Testing

/// The selection `outbox-relay redrive` and `replay` take (issue 31, item 3): bounded,
/// validated with one cause and one fix, and turned into SQL whose every user value is a
/// bind parameter.
@Suite("Row selection")
struct RowSelectionTests {
    /// The flags a test passes, turned into a selection in the test body.
    struct Flags: Sendable {
        var topics: [String] = []
        var types: [String] = []
        var reason: String?
        var fromID: Int64?
        var toID: Int64?
        var createdAfter: String?
        var createdBefore: String?
        var all = false
        func selection() throws(SelectionError) -> RowSelection {
            try RowSelection(topics: topics, types: types, reason: reason, fromID: fromID, toID: toID,
                             createdAfter: createdAfter, createdBefore: createdBefore, all: all)
        }
    }

    /// A refused selection → the words its message must contain.
    @Test("refused selections name the problem and the fix", arguments: [
        (Flags(), "no rows are selected"),
        (Flags(topics: ["BOOK_SAVE"], all: true), "cannot be combined"),
        (Flags(topics: ["BOOK SAVE"]), "is not a topic name"),
        (Flags(topics: [String(repeating: "a", count: 250)]), "is not a topic name"),
        (Flags(types: [""]), "--type is empty"),
        (Flags(reason: ""), "--reason is empty"),
        (Flags(fromID: -1), "negative"),
        (Flags(fromID: 10, toID: 5), "swap them"),
        (Flags(createdAfter: "yesterday"), "RFC 3339"),
        (Flags(createdBefore: "2026-12-06T10:00:00"), "RFC 3339"),  // no offset: the server's zone would decide
        (Flags(createdBefore: "2026-12-06T10:00:00+1"), "RFC 3339"),
        (Flags(createdAfter: "2026-12-06T10:00:00Z trailing"), "RFC 3339"),
    ])
    func refused(flags: Flags, words: String) {
        do {
            _ = try flags.selection()
            Issue.record("accepted a selection that should be refused (\(words))")
        } catch {
            #expect(error.description.contains(words), "\(error)")
            #expect(error.description.contains("Fix: "), "\(error)")
        }
    }

    @Test("accepted times", arguments: [
        "2026-12-06T10:00:00Z", "2026-12-06 10:00:00+00", "2026-12-06T10:00:00.123456+05:30", "2026-12-06T10:00-02:00", "2026-12-06t10:00:00z",
    ])
    func acceptedTimes(time: String) throws {
        _ = try RowSelection(createdAfter: time)
    }

    /// A selection → the WHERE condition and its parameters, placeholders from $3.
    @Test("the condition and its parameters", arguments: [
        (try! RowSelection(all: true), "TRUE", [String]()),
        (try! RowSelection(all: true, statuses: ["DEAD"]), "status IN ($3)", ["DEAD"]),
        (try! RowSelection(topics: ["A", "B"], statuses: ["DEAD"]), "status IN ($3) AND topic IN ($4, $5)", ["DEAD", "A", "B"]),
        (try! RowSelection(types: ["T"], reason: "message_too_large"), "type IN ($3) AND strpos(last_error, $4) > 0", ["T", "message_too_large"]),
        (try! RowSelection(fromID: 10, toID: 20), "outbox_id >= $3::bigint AND outbox_id <= $4::bigint", ["10", "20"]),
        (try! RowSelection(createdAfter: "2026-12-06T10:00:00Z", createdBefore: "2026-12-07T10:00:00Z"),
         "created_at >= $3::timestamptz AND created_at < $4::timestamptz", ["2026-12-06T10:00:00Z", "2026-12-07T10:00:00Z"]),
    ])
    func condition(selection: RowSelection, sql: String, parameters: [String]) {
        #expect(selection.predicate(first: 3) == SQLPredicate(sql: sql, parameters: parameters))
    }

    @Test("hostile values stay parameters: nothing the operator types reaches the SQL text")
    func hostileValues() throws {
        let hostile = "x'); DROP TABLE outbox; --$1"
        let selection = try RowSelection(types: [hostile], reason: hostile)
        for statement in [selection.batchStatement(afterID: 0, limit: 10), selection.summaryStatement(afterID: 0),
                          selection.sampleStatement(afterID: 0, limit: 5)] {
            #expect(!statement.sql.contains("DROP"), "\(statement.sql)")
            #expect(statement.parameters.filter { $0 == hostile }.count == 2)
            // Every placeholder has its parameter, and every parameter its placeholder.
            let highest = (1...20).last { statement.sql.contains("$\($0)") } ?? 0
            #expect(highest == statement.parameters.count, "\(statement.sql) \(statement.parameters)")
        }
    }

    @Test("a batch reads after the cursor, in outbox_id order, with the WAL position in the same statement")
    func batchStatement() throws {
        let statement = try RowSelection(topics: ["BOOK_SAVE"], statuses: ["DEAD"]).batchStatement(afterID: 41, limit: 500)
        #expect(statement.parameters == ["41", "500", "DEAD", "BOOK_SAVE"])
        #expect(statement.sql.contains("pg_current_wal_insert_lsn()"))
        #expect(statement.sql.contains("outbox_id > $1::bigint AND status IN ($3) AND topic IN ($4)"))
        #expect(statement.sql.hasSuffix("ORDER BY outbox_id LIMIT $2::int"))
    }
}
