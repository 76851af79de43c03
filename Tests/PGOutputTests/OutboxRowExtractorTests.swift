@testable import PGOutput
import Testing

@Suite("Outbox row extraction")
struct OutboxRowExtractorTests {
    func extract(_ relationBytes: [UInt8], _ insert: [UInt8]) throws -> OutboxRow {
        var d = PGOutputDecoder()
        guard case .relation(let relation) = try d.decode(relationBytes) else { throw PGOutputError(.malformed, "no relation") }
        _ = try d.decode(insert)
        var x = OutboxRowExtractor()
        let tuple = d.newTuple
        return try insert.withUnsafeBytes { raw in try x.extract(relation: relation, tuple: tuple, bytes: raw) }
    }

    @Test func extractsByName() throws {
        let row = try extract(Bytes.relation(oid: 3), Bytes.outboxInsert(oid: 3, id: 42, topic: "PAYMENT_SAVE", key: "k", payload: "{}", trace: .text("00-t")))
        #expect(row == OutboxRow(id: 42, topic: "PAYMENT_SAVE", key: Array("k".utf8), type: "BOOK_SAVE", payload: Array("{}".utf8),
                                 createdAt: "2026-11-25 05:00:00+00", traceParent: "00-t"))
    }

    @Test("column order does not matter, extra columns are ignored, trace_parent is optional")
    func columnOrderIndependent() throws {
        let columns = ["extra", "payload", "mq_key", "created_at", "type", "topic", "outbox_id"]
        let insert = Bytes.insert(oid: 4, [.text("x"), .text("{\"v\":1}"), .text("key"), .text("t0"), .text("T"), .text("top"), .text("7")])
        let row = try extract(Bytes.relation(oid: 4, columns: columns), insert)
        #expect(row.id == 7 && row.topic == "top" && row.key == Array("key".utf8) && row.traceParent == nil)
        #expect(row.payload == Array("{\"v\":1}".utf8))
    }

    @Test("NULL, non-numeric or unsent required columns are malformed rows naming the column and the id")
    func malformed() throws {
        let nullTopic = Bytes.insert(oid: 3, [.text("5"), .null, .text("k"), .text("T"), .text("INIT"), .text("{}"), .text("t"), .text("0"), .null, .null, .null])
        let e1 = #expect(throws: MalformedOutboxRow.self) { try extract(Bytes.relation(oid: 3), nullTopic) }
        #expect(e1 == MalformedOutboxRow(outboxID: 5, column: "topic", reason: "is NULL"))
        let badID = Bytes.insert(oid: 3, [.text("x5"), .text("t"), .text("k"), .text("T"), .text("INIT"), .text("{}"), .text("t"), .text("0"), .null, .null, .null])
        let e2 = #expect(throws: MalformedOutboxRow.self) { try extract(Bytes.relation(oid: 3), badID) }
        #expect(e2?.column == "outbox_id" && e2?.outboxID == nil)
        let toast = Bytes.insert(oid: 3, [.text("6"), .text("t"), .text("k"), .text("T"), .text("INIT"), .toast, .text("t"), .text("0"), .null, .null, .null])
        let e3 = #expect(throws: MalformedOutboxRow.self) { try extract(Bytes.relation(oid: 3), toast) }
        #expect(e3?.column == "payload" && e3?.outboxID == 6)
        let short = Bytes.insert(oid: 3, [.text("8")])
        #expect(throws: MalformedOutboxRow.self) { try extract(Bytes.relation(oid: 3), short) }
        let missingColumn = #expect(throws: MalformedOutboxRow.self) {
            try extract(Bytes.relation(oid: 9, columns: ["outbox_id", "topic"]), Bytes.insert(oid: 9, [.text("1"), .text("t")]))
        }
        #expect(missingColumn != nil)
    }

    @Test("only the configured tables are outbox tables, by schema and name")
    func tablesBySchemaAndName() {
        var single = OutboxRowExtractor()
        #expect(single.table(of: Relation(oid: 1, namespace: "public", name: "outbox", replicaIdentity: 0, columns: [])) == .default)
        // Before several tables, any schema's "outbox" was captured, and its rows then
        // went to public.outbox's consumers and sweeper.
        #expect(single.table(of: Relation(oid: 2, namespace: "app", name: "outbox", replicaIdentity: 0, columns: [])) == nil)
        #expect(single.table(of: Relation(oid: 3, namespace: "public", name: "outbox2", replicaIdentity: 0, columns: [])) == nil)
        let teamA = try! OutboxTable(parsing: "team_a.outbox"), teamB = try! OutboxTable(parsing: "team_b.events")
        var several = OutboxRowExtractor(tables: [teamA, teamB])
        #expect(several.table(of: Relation(oid: 4, namespace: "team_b", name: "events", replicaIdentity: 0, columns: [])) == teamB)
        #expect(several.table(of: Relation(oid: 5, namespace: "team_a", name: "outbox", replicaIdentity: 0, columns: [])) == teamA)
        #expect(several.table(of: Relation(oid: 6, namespace: "public", name: "outbox", replicaIdentity: 0, columns: [])) == nil)
        // A relation re-announced under another name (ALTER TABLE ... RENAME) is looked up again.
        #expect(several.table(of: Relation(oid: 4, namespace: "team_b", name: "old_events", replicaIdentity: 0, columns: [], version: 1)) == nil)
    }

    @Test("rows of two tables interleaved keep their own layouts and carry their table")
    func twoTablesInterleaved() throws {
        var d = PGOutputDecoder()
        guard case .relation(let a) = try d.decode(Bytes.relation(oid: 10, namespace: "team_a")),
              case .relation(let b) = try d.decode(Bytes.relation(oid: 11, namespace: "team_b",
                                                                  columns: ["payload", "outbox_id", "topic", "mq_key", "type", "created_at"]))
        else { throw PGOutputError(.malformed, "no relation") }
        var x = OutboxRowExtractor(tables: [try OutboxTable(parsing: "team_a.outbox"), try OutboxTable(parsing: "team_b.outbox")])
        for round in 0..<2 {
            let insertA = Bytes.outboxInsert(oid: 10, id: Int64(round + 1), topic: "A", key: "k", payload: "{}", trace: .null)
            _ = try d.decode(insertA)
            let tupleA = d.newTuple
            let rowA = try insertA.withUnsafeBytes { try x.extract(relation: a, tuple: tupleA, bytes: $0) }
            #expect(rowA.table.qualifiedName == "team_a.outbox" && rowA.topic == "A" && rowA.id == Int64(round + 1))
            let insertB = Bytes.insert(oid: 11, [.text("{\"b\":1}"), .text("7"), .text("B"), .text("kb"), .text("T"), .text("t0")])
            _ = try d.decode(insertB)
            let tupleB = d.newTuple
            let rowB = try insertB.withUnsafeBytes { try x.extract(relation: b, tuple: tupleB, bytes: $0) }
            #expect(rowB.table.qualifiedName == "team_b.outbox" && rowB.topic == "B" && rowB.id == 7 && rowB.key == Array("kb".utf8))
        }
    }

    @Test("the zero-copy view points into the message and copies to the same row")
    func viewMatchesOwnedRow() throws {
        var d = PGOutputDecoder()
        guard case .relation(let relation) = try d.decode(Bytes.relation(oid: 3)) else { throw PGOutputError(.malformed, "no relation") }
        let insert = Bytes.outboxInsert(oid: 3, id: 9_007_199_254_740_993, topic: "BOOK_SAVE", key: "BOOK:1", payload: #"{"a": 1}"#, trace: .null)
        _ = try d.decode(insert)
        var x = OutboxRowExtractor()
        let tuple = d.newTuple
        try insert.withUnsafeBytes { raw in
            let view = try x.view(relation: relation, tuple: tuple, bytes: raw)
            #expect(view.id == 9_007_199_254_740_993)
            #expect(String(decoding: view.idText, as: UTF8.self) == "9007199254740993")
            #expect(view.topicString == "BOOK_SAVE")
            #expect(view.traceParent == nil)
            // Slices of the message, not copies.
            #expect(view.payload.baseAddress! >= raw.baseAddress! && view.payload.baseAddress! + view.payload.count <= raw.baseAddress! + raw.count)
            #expect(view.owned() == (try x.extract(relation: relation, tuple: tuple, bytes: raw)))
        }
    }

    @Test("outbox_id text parsing: signs, bounds, overflow and junk", arguments: [
        ("0", Int64(0)), ("42", 42), ("-7", -7), ("+7", 7), ("9223372036854775807", .max), ("-9223372036854775808", .min),
        ("9223372036854775808", nil), ("-9223372036854775809", nil), ("", nil), ("-", nil), ("12a", nil), (" 1", nil), ("1.0", nil),
    ] as [(String, Int64?)])
    func parseInt64(text: String, expected: Int64?) {
        let parsed = Array(text.utf8).withUnsafeBytes { OutboxRowExtractor.parseInt64($0) }
        #expect(parsed == expected)
    }
}
