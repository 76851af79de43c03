@testable import PGOutput
import Testing

@Suite("pgoutput decoder: truncated and garbage input are clear errors, never crashes")
struct BadInputTests {
    static let samples: [(String, [UInt8])] = [
        ("begin", Bytes.begin(finalLSN: 1, xid: 2)),
        ("commit", Bytes.commit(commitLSN: 1, endLSN: 2)),
        ("relation", Bytes.relation(oid: 1)),
        ("insert", Bytes.outboxInsert(oid: 1, id: 9, trace: .text("00-abc"))),
        ("type", { var b = Bytes("Y"); b.u32(1); b.cstring("n"); b.cstring("t"); return b.bytes }()),
        ("message", { var b = Bytes("M"); b.u8(0); b.u64(1); b.cstring("p"); b.i32(2); b.raw([1, 2]); return b.bytes }()),
        ("stream commit", { var b = Bytes("c"); b.u32(1); b.u8(0); b.u64(1); b.u64(2); b.i64(3); return b.bytes }()),
    ]

    @Test("every proper prefix of a valid message is rejected", arguments: samples)
    func truncatedAtEveryByte(name: String, message: [UInt8]) {
        for length in 0..<message.count {
            var d = PGOutputDecoder()
            #expect(throws: PGOutputError.self, "\(name) cut at \(length) bytes") { try d.decode(Array(message.prefix(length))) }
        }
    }

    @Test("trailing bytes are rejected", arguments: samples)
    func trailingGarbage(name: String, message: [UInt8]) {
        var d = PGOutputDecoder()
        let error = #expect(throws: PGOutputError.self) { try d.decode(message + [0xFF]) }
        #expect(error?.code == .malformed || error?.code == .truncated, "\(name)")
    }

    @Test func unknownMessageType() {
        var d = PGOutputDecoder()
        let error = #expect(throws: PGOutputError.self) { try d.decode([UInt8(ascii: "Z"), 1, 2]) }
        #expect(error?.code == .unknownMessage)
        #expect(error?.description.contains("Z") == true)
    }

    @Test func badTupleKindAndNegativeLength() {
        var d = PGOutputDecoder()
        var kind = Bytes("I"); kind.u32(1); kind.char("N"); kind.u16(1); kind.char("x")
        #expect(throws: PGOutputError.self) { try d.decode(kind.bytes) }
        var negative = Bytes("I"); negative.u32(1); negative.char("N"); negative.u16(1); negative.char("t"); negative.i32(-5)
        #expect(throws: PGOutputError.self) { try d.decode(negative.bytes) }
        var huge = Bytes("I"); huge.u32(1); huge.char("N"); huge.u16(1); huge.char("t"); huge.i32(Int32.max)
        #expect(throws: PGOutputError.self) { try d.decode(huge.bytes) }
        var marker = Bytes("I"); marker.u32(1); marker.char("X")
        #expect(throws: PGOutputError.self) { try d.decode(marker.bytes) }
    }

    @Test("random garbage never traps")
    func fuzz() {
        var rng = SplitMix(seed: 0x5EED)
        let tags: [UInt8] = Array("BCRIUDTYOMSEcA".utf8)
        for _ in 0..<20_000 {
            var d = PGOutputDecoder()
            let length = Int(rng.next() % 64)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if !bytes.isEmpty { bytes[0] = tags[Int(rng.next() % UInt64(tags.count))] }
            _ = try? d.decode(bytes)
            _ = try? ReplicationMessage.parse(bytes)
        }
    }
}

/// Deterministic PRNG so failures reproduce.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
