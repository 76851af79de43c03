import Foundation
import PostgresClient
import Schema
import Testing

@Suite("App-side outbox API")
struct OutboxAPITests {
    @Test("enqueue writes an INIT row whose payload carries its id and key")
    func enqueue() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.migrated()
            let id = try await conn.transaction { tx in
                try await Outbox.enqueue(on: tx, topic: "BOOK_SAVE", key: "BOOK:7", type: "BOOK_SAVE",
                                         payload: Array(#"{"note":"it's \"quoted\"; DROP TABLE outbox; --"}"#.utf8),
                                         traceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            }
            let row = try await conn.query("SELECT * FROM outbox WHERE outbox_id = $1", [.int(id)]).single()
            #expect(try row.string("status") == "INIT")
            #expect(try row.string("mq_key") == "BOOK:7")
            let payload = try JSONSerialization.jsonObject(with: Data(try row.string("payload").utf8)) as! [String: Any]
            #expect(payload["outboxId"] as? Int64 == id || (payload["outboxId"] as? Int).map(Int64.init) == id)
            #expect(payload["messageQueueKey"] as? String == "BOOK:7")
            #expect(payload["note"] as? String == #"it's "quoted"; DROP TABLE outbox; --"#)
            #expect(try row.optionalString("trace_parent")?.hasPrefix("00-") == true)
        }
    }

    @Test("a rolled-back transaction leaves no outbox row")
    func rollback() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.migrated()
            struct Boom: Error {}
            await #expect(throws: Boom.self) {
                try await conn.transaction { tx in
                    try await Outbox.enqueue(on: tx, topic: "BOOK_SAVE", key: "k", type: "BOOK_SAVE", payload: Array("{}".utf8))
                    throw Boom()
                }
            }
            #expect(try await conn.query("SELECT count(*) AS n FROM outbox").single().int("n") == 0)
        }
    }

    @Test("bad arguments are refused with an error naming the field", arguments: [
        ("", "k", "{}", "topic"), ("bad topic", "k", "{}", "topic"), ("x'; DROP TABLE outbox;--", "k", "{}", "topic"),
        (String(repeating: "a", count: 250), "k", "{}", "topic"), ("..", "k", "{}", "topic"),
        ("BOOK_SAVE", "", "{}", "mq_key"), ("BOOK_SAVE", "k", "not json", "payload"), ("BOOK_SAVE", "k", "[1,2]", "payload"),
    ])
    func rejected(topic: String, key: String, payload: String, field: String) async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.migrated()
            let error = await #expect(throws: SchemaError.self) {
                try await Outbox.enqueue(on: conn, topic: topic, key: key, type: "T", payload: Array(payload.utf8))
            }
            guard case .invalidOutboxField(let named, _) = error else { Issue.record("wrong error \(String(describing: error))"); return }
            #expect(named == field)
            #expect(try await conn.query("SELECT count(*) AS n FROM outbox").single().int("n") == 0)
        }
    }

    @Test("a payload over the limit is refused")
    func oversize() async throws {
        let big = "{\"blob\":\"" + String(repeating: "x", count: 2_000_000) + "\"}"
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.migrated()
            let refused = await #expect(throws: SchemaError.self) {
                try await Outbox.enqueue(on: conn, topic: "BOOK_SAVE", key: "k", type: "T", payload: Array(big.utf8))
            }
            #expect("\(refused!)".contains("payload"))
            #expect("\(refused!)".contains("1000000"))
        }
    }
}
