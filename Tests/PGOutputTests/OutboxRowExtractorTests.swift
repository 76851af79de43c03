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

    @Test func isOutboxByName() {
        let x = OutboxRowExtractor()
        #expect(x.isOutbox(Relation(oid: 1, namespace: "app", name: "outbox", replicaIdentity: 0, columns: [])))
        #expect(!x.isOutbox(Relation(oid: 1, namespace: "public", name: "outbox2", replicaIdentity: 0, columns: [])))
    }
}
