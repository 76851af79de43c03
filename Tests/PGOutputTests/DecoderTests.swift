@testable import PGOutput
import Testing

@Suite("pgoutput decoder: every message type")
struct DecoderTests {
    @Test func beginAndCommit() throws {
        var d = PGOutputDecoder()
        #expect(try d.decode(Bytes.begin(finalLSN: 0x1_0000_0010, time: 42, xid: 7))
                == .begin(.init(finalLSN: LSN(0x1_0000_0010), commitTime: 42, xid: 7)))
        #expect(try d.decode(Bytes.commit(commitLSN: 0x10, endLSN: 0x38, time: 43, flags: 0))
                == .commit(.init(flags: 0, commitLSN: LSN(0x10), endLSN: LSN(0x38), commitTime: 43)))
    }

    @Test func relationIsCachedAndVersioned() throws {
        var d = PGOutputDecoder()
        guard case .relation(let r1) = try d.decode(Bytes.relation(oid: 16384)) else { Issue.record("not a relation"); return }
        #expect(r1.name == "outbox" && r1.namespace == "public" && r1.columns.count == 11)
        #expect(r1.columns[0].isKey && r1.columns[0].name == "outbox_id" && !r1.columns[1].isKey)
        guard case .relation(let r2) = try d.decode(Bytes.relation(oid: 16384, columns: ["outbox_id", "topic"])) else { return }
        #expect(r2.version > r1.version)
        #expect(d.relations[16384]?.columns.count == 2)
    }

    @Test("insert with text, NULL, unchanged-TOAST and binary columns")
    func insertColumns() throws {
        var d = PGOutputDecoder()
        _ = try d.decode(Bytes.relation(oid: 1, columns: ["a", "b", "c", "d"]))
        let message = Bytes.insert(oid: 1, [.text("héllo"), .null, .toast, .binary([0, 1, 2])])
        #expect(try d.decode(message) == .insert(relationID: 1, xid: nil))
        #expect(d.newTuple.count == 4)
        guard case .text(let r) = d.newTuple[0] else { Issue.record("column 0 not text"); return }
        #expect(String(decoding: message[r], as: UTF8.self) == "héllo")
        #expect(d.newTuple[1] == .null)
        #expect(d.newTuple[2] == .unchangedToast)
        guard case .binary(let b) = d.newTuple[3] else { Issue.record("column 3 not binary"); return }
        #expect(Array(message[b]) == [0, 1, 2])
    }

    @Test func emptyTextValue() throws {
        var d = PGOutputDecoder()
        let message = Bytes.insert(oid: 1, [.text("")])
        _ = try d.decode(message)
        #expect(d.newTuple == [.text(message.count..<message.count)])
    }

    @Test("update, delete, truncate, type, origin and logical message are decoded (the relay skips them)")
    func skippedTypes() throws {
        var d = PGOutputDecoder()
        var u = Bytes("U"); u.u32(1); u.char("O"); Bytes.tuple([.text("old")], into: &u); u.char("N"); Bytes.tuple([.text("new")], into: &u)
        #expect(try d.decode(u.bytes) == .update(relationID: 1, xid: nil))
        var u2 = Bytes("U"); u2.u32(1); u2.char("N"); Bytes.tuple([.null], into: &u2)
        #expect(try d.decode(u2.bytes) == .update(relationID: 1, xid: nil))
        var del = Bytes("D"); del.u32(1); del.char("K"); Bytes.tuple([.text("1")], into: &del)
        #expect(try d.decode(del.bytes) == .delete(relationID: 1, xid: nil))
        var t = Bytes("T"); t.u32(2); t.u8(1); t.u32(10); t.u32(11)
        #expect(try d.decode(t.bytes) == .truncate(xid: nil, relationIDs: [10, 11], options: 1))
        var y = Bytes("Y"); y.u32(99); y.cstring("public"); y.cstring("mood")
        #expect(try d.decode(y.bytes) == .type(xid: nil, oid: 99, namespace: "public", name: "mood"))
        var o = Bytes("O"); o.u64(0x20); o.cstring("origin1")
        #expect(try d.decode(o.bytes) == .origin(lsn: LSN(0x20), name: "origin1"))
        var m = Bytes("M"); m.u8(1); m.u64(0x30); m.cstring("pfx"); m.i32(3); m.raw([7, 8, 9])
        guard case .logicalMessage(nil, true, LSN(0x30), "pfx", let content) = try d.decode(m.bytes) else { Issue.record("message"); return }
        #expect(Array(m.bytes[content]) == [7, 8, 9])
    }

    @Test("protocol v2 streaming: start, xid-prefixed changes, stop, commit, abort")
    func streaming() throws {
        var d = PGOutputDecoder()
        var s = Bytes("S"); s.u32(700); s.u8(1)
        #expect(try d.decode(s.bytes) == .streamStart(xid: 700, firstSegment: true))
        #expect(d.inStreamBlock)
        _ = try d.decode(Bytes.relation(oid: 5, xid: 700))
        #expect(try d.decode(Bytes.outboxInsert(oid: 5, id: 1, xid: 701)) == .insert(relationID: 5, xid: 701))
        #expect(try d.decode(Bytes("E").bytes) == .streamStop)
        #expect(!d.inStreamBlock)
        var c = Bytes("c"); c.u32(700); c.u8(0); c.u64(0x100); c.u64(0x128); c.i64(5)
        #expect(try d.decode(c.bytes) == .streamCommit(xid: 700, commit: .init(flags: 0, commitLSN: LSN(0x100), endLSN: LSN(0x128), commitTime: 5)))
        var a = Bytes("A"); a.u32(700); a.u32(701)
        #expect(try d.decode(a.bytes) == .streamAbort(xid: 700, subxid: 701))
        // Replaying a buffered change forces the xid-prefixed layout outside a block.
        #expect(try d.decode(Bytes.outboxInsert(oid: 5, id: 2, xid: 702), streamed: true) == .insert(relationID: 5, xid: 702))
    }

    @Test func streamOrderViolations() throws {
        var d = PGOutputDecoder()
        #expect(throws: PGOutputError.self) { try d.decode(Bytes("E").bytes) }
        var s = Bytes("S"); s.u32(1); s.u8(0)
        _ = try d.decode(s.bytes)
        let error = #expect(throws: PGOutputError.self) { try d.decode(s.bytes) }
        #expect(error?.code == .outOfOrder)
    }
}
