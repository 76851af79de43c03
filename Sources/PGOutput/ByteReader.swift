/// Bounds-checked big-endian reads over a message, for the decoder. Every read that would
/// run past the end throws instead of trapping, so hostile or truncated input is an error.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func need(_ count: Int, _ what: StaticString) throws(PGOutputError) {
        guard count >= 0, remaining >= count else {
            throw PGOutputError(.truncated, "expected \(what) (\(count) bytes) at byte \(offset), but only \(remaining) remain")
        }
    }

    mutating func uint8(_ what: StaticString) throws(PGOutputError) -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint16(_ what: StaticString) throws(PGOutputError) -> UInt16 {
        try need(2, what)
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func uint32(_ what: StaticString) throws(PGOutputError) -> UInt32 {
        try need(4, what)
        var value: UInt32 = 0
        for i in 0..<4 { value = value << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return value
    }

    mutating func int32(_ what: StaticString) throws(PGOutputError) -> Int32 {
        Int32(bitPattern: try uint32(what))
    }

    mutating func uint64(_ what: StaticString) throws(PGOutputError) -> UInt64 {
        try need(8, what)
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return value
    }

    mutating func int64(_ what: StaticString) throws(PGOutputError) -> Int64 {
        Int64(bitPattern: try uint64(what))
    }

    mutating func lsn(_ what: StaticString) throws(PGOutputError) -> LSN { LSN(try uint64(what)) }

    /// A NUL-terminated string.
    mutating func cString(_ what: StaticString) throws(PGOutputError) -> String {
        var end = offset
        while end < bytes.count, bytes[end] != 0 { end += 1 }
        guard end < bytes.count else {
            throw PGOutputError(.truncated, "expected a NUL-terminated \(what) at byte \(offset)")
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]), as: UTF8.self)
        offset = end + 1
        return text
    }

    /// `count` raw bytes as a range of the message.
    mutating func range(_ count: Int, _ what: StaticString) throws(PGOutputError) -> Range<Int> {
        try need(count, what)
        defer { offset += count }
        return offset..<(offset + count)
    }

    mutating func skip(_ count: Int, _ what: StaticString) throws(PGOutputError) {
        try need(count, what)
        offset += count
    }
}
