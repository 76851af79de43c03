@testable import PGOutput

/// Builds pgoutput messages byte by byte (big-endian), as PostgreSQL sends them.
struct Bytes {
    var bytes: [UInt8] = []

    init(_ tag: Character? = nil) { if let tag { bytes.append(tag.asciiValue!) } }

    @discardableResult mutating func u8(_ v: UInt8) -> Self { bytes.append(v); return self }
    @discardableResult mutating func char(_ c: Character) -> Self { bytes.append(c.asciiValue!); return self }
    @discardableResult mutating func u16(_ v: UInt16) -> Self { bytes += [UInt8(v >> 8), UInt8(v & 0xff)]; return self }
    @discardableResult mutating func u32(_ v: UInt32) -> Self { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) }; return self }
    @discardableResult mutating func i32(_ v: Int32) -> Self { u32(UInt32(bitPattern: v)) }
    @discardableResult mutating func u64(_ v: UInt64) -> Self { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }; return self }
    @discardableResult mutating func i64(_ v: Int64) -> Self { u64(UInt64(bitPattern: v)) }
    @discardableResult mutating func cstring(_ s: String) -> Self { bytes += Array(s.utf8) + [0]; return self }
    @discardableResult mutating func raw(_ b: [UInt8]) -> Self { bytes += b; return self }

    // MARK: whole messages

    static func begin(finalLSN: UInt64, time: Int64 = 1_000, xid: UInt32) -> [UInt8] {
        var b = Bytes("B"); b.u64(finalLSN); b.i64(time); b.u32(xid); return b.bytes
    }

    static func commit(commitLSN: UInt64, endLSN: UInt64, time: Int64 = 1_000, flags: UInt8 = 0) -> [UInt8] {
        var b = Bytes("C"); b.u8(flags); b.u64(commitLSN); b.u64(endLSN); b.i64(time); return b.bytes
    }

    static let outboxColumns = ["outbox_id", "topic", "mq_key", "type", "status", "payload", "created_at", "attempts", "last_sent_at", "last_error", "trace_parent"]

    static func relation(oid: UInt32, namespace: String = "public", name: String = "outbox", columns: [String] = outboxColumns,
                         xid: UInt32? = nil) -> [UInt8] {
        var b = Bytes("R")
        if let xid { b.u32(xid) }
        b.u32(oid); b.cstring(namespace); b.cstring(name); b.char("d"); b.u16(UInt16(columns.count))
        for (i, c) in columns.enumerated() { b.u8(i == 0 ? 1 : 0); b.cstring(c); b.u32(25); b.i32(-1) }
        return b.bytes
    }

    enum Value { case text(String), null, toast, binary([UInt8]) }

    static func tuple(_ values: [Value], into b: inout Bytes) {
        b.u16(UInt16(values.count))
        for v in values {
            switch v {
            case .text(let s): b.char("t"); b.i32(Int32(s.utf8.count)); b.raw(Array(s.utf8))
            case .binary(let x): b.char("b"); b.i32(Int32(x.count)); b.raw(x)
            case .null: b.char("n")
            case .toast: b.char("u")
            }
        }
    }

    static func insert(oid: UInt32, _ values: [Value], xid: UInt32? = nil) -> [UInt8] {
        var b = Bytes("I")
        if let xid { b.u32(xid) }
        b.u32(oid); b.char("N"); tuple(values, into: &b)
        return b.bytes
    }

    /// A full outbox row in the default column order.
    static func outboxInsert(oid: UInt32, id: Int64, topic: String = "BOOK_SAVE", key: String = "BOOK:1",
                             payload: String = #"{"a": 1}"#, trace: Value = .null, xid: UInt32? = nil) -> [UInt8] {
        insert(oid: oid, [.text(String(id)), .text(topic), .text(key), .text("BOOK_SAVE"), .text("INIT"), .text(payload),
                          .text("2026-11-25 05:00:00+00"), .text("0"), .null, .null, trace], xid: xid)
    }
}
