@testable import PGOutput
import Testing

@Suite("Replication framing and LSNs")
struct ReplicationMessageTests {
    @Test func xLogData() throws {
        var b = Bytes("w"); b.u64(0x10); b.u64(0x20); b.i64(99); b.raw([1, 2, 3])
        #expect(try ReplicationMessage.parse(b.bytes) == .xLogData(walStart: LSN(0x10), walEnd: LSN(0x20), sendTime: 99, payload: 25..<28))
    }

    @Test func keepaliveWithAndWithoutReplyRequest() throws {
        var b = Bytes("k"); b.u64(0x30); b.i64(7); b.u8(1)
        #expect(try ReplicationMessage.parse(b.bytes) == .keepalive(walEnd: LSN(0x30), sendTime: 7, replyRequested: true))
        var c = Bytes("k"); c.u64(0x30); c.i64(7); c.u8(0)
        #expect(try ReplicationMessage.parse(c.bytes) == .keepalive(walEnd: LSN(0x30), sendTime: 7, replyRequested: false))
        #expect(throws: PGOutputError.self) { try ReplicationMessage.parse(Array(c.bytes.dropLast())) }
        #expect(throws: PGOutputError.self) { try ReplicationMessage.parse([UInt8(ascii: "q")]) }
    }

    @Test("standby status update layout: 'r', write, flush, apply, clock, reply flag")
    func statusUpdate() {
        let bytes = ReplicationMessage.standbyStatusUpdate(written: LSN(0x0102), flushed: LSN(0x0304), applied: LSN(0x0506), clientTime: -1, replyRequested: true)
        #expect(bytes.count == 34)
        #expect(bytes[0] == UInt8(ascii: "r"))
        #expect(Array(bytes[7...8]) == [0x01, 0x02])
        #expect(Array(bytes[15...16]) == [0x03, 0x04])
        #expect(Array(bytes[23...24]) == [0x05, 0x06])
        #expect(Array(bytes[25...32]) == [UInt8](repeating: 0xFF, count: 8))
        #expect(bytes[33] == 1)
    }

    @Test func lsnTextRoundTrip() {
        #expect(LSN("16/B374D848")?.rawValue == 0x16_B374_D848)
        #expect(LSN(0x16_B374_D848).description == "16/B374D848")
        #expect(LSN("0/0") == .invalid)
        for bad in ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/1"] { #expect(LSN(bad) == nil, "\(bad)") }
        #expect(LSN(1) < LSN(2))
    }

    @Test func epochConversion() {
        #expect(PostgresEpoch.toUnixMicroseconds(0) == 946_684_800_000_000)
        #expect(PostgresEpoch.fromUnixMicroseconds(PostgresEpoch.toUnixMicroseconds(123)) == 123)
    }
}
