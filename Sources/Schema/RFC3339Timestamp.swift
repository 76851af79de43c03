/// PostgreSQL's text form of a `timestamptz` (DateStyle ISO, the server default:
/// `2026-11-26 18:57:50.123456+00`, `…+05:30`) to RFC 3339 (`2026-11-26T18:57:50.123456+00:00`).
///
/// A rewrite of the text, not a date computation: the instant and the offset stay exactly
/// as the server printed them. Values with no RFC 3339 form give nil: `infinity`, BC and
/// five-digit years, offsets with seconds (historical local mean times), other DateStyles.
/// Pure and allocation-free: it runs once per published row.
public enum RFC3339Timestamp {
    /// The longest output: date, `T`, time, `.` and up to 9 fraction digits, `+hh:mm`.
    public static let maxLength = 10 + 1 + 8 + 10 + 6

    /// Writes the RFC 3339 form of `text` into `out` (at least `maxLength` bytes) and returns
    /// its length, or nil when there is none.
    public static func convert(_ text: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        precondition(out.count >= maxLength)
        let n = text.count
        guard n >= 22 else { return nil }
        func digits(_ range: Range<Int>) -> Bool {
            range.allSatisfy { text[$0] >= UInt8(ascii: "0") && text[$0] <= UInt8(ascii: "9") }
        }
        // A Unicode.Scalar literal, compared as its byte: `Character.asciiValue` does
        // grapheme work on every call, and this runs ~20 times per published row (it was
        // ~4% of the relay's CPU in a drain profile).
        func at(_ i: Int, _ c: Unicode.Scalar) -> Bool { text[i] == UInt8(ascii: c) }
        guard digits(0..<4), at(4, "-"), digits(5..<7), at(7, "-"), digits(8..<10), at(10, " ") || at(10, "T"),
              digits(11..<13), at(13, ":"), digits(14..<16), at(16, ":"), digits(17..<19) else { return nil }
        var i = 19
        var fractionEnd = 19
        if at(i, ".") {
            i += 1
            while i < n, digits(i..<(i + 1)) { i += 1 }
            let fractionDigits = i - 20
            guard (1...9).contains(fractionDigits) else { return nil }
            fractionEnd = i
        }
        // Offset: ±hh, or ±hh:mm; anything after it (":ss", " BC") has no RFC 3339 form.
        guard i + 3 <= n, at(i, "+") || at(i, "-"), digits((i + 1)..<(i + 3)) else { return nil }
        let offsetStart = i
        var offsetMinutes: Range<Int>?
        i += 3
        if i < n {
            guard i + 3 == n, at(i, ":"), digits((i + 1)..<(i + 3)) else { return nil }
            offsetMinutes = (i + 1)..<(i + 3)
        }
        // The fields' ranges (the calendar and clock limits RFC 3339 states).
        func number(_ range: Range<Int>) -> Int { range.reduce(0) { $0 * 10 + Int(text[$1] - UInt8(ascii: "0")) } }
        guard (1...12).contains(number(5..<7)), (1...31).contains(number(8..<10)), number(11..<13) <= 23,
              number(14..<16) <= 59, number(17..<19) <= 60, number((offsetStart + 1)..<(offsetStart + 3)) <= 23,
              offsetMinutes.map({ number($0) <= 59 }) ?? true else { return nil }

        var o = 0
        func put(_ byte: UInt8) { out[o] = byte; o += 1 }
        for j in 0..<fractionEnd { put(j == 10 ? UInt8(ascii: "T") : text[j]) }
        for j in offsetStart..<(offsetStart + 3) { put(text[j]) }
        put(UInt8(ascii: ":"))
        if let offsetMinutes { for j in offsetMinutes { put(text[j]) } } else { put(UInt8(ascii: "0")); put(UInt8(ascii: "0")) }
        return o
    }

    /// The same for a `String`; nil when there is no RFC 3339 form.
    public static func convert(_ text: String) -> String? {
        var text = text
        return text.withUTF8 { input in
            withUnsafeTemporaryAllocation(byteCount: maxLength, alignment: 1) { out in
                convert(UnsafeRawBufferPointer(input), into: out).map { String(decoding: UnsafeRawBufferPointer(rebasing: out[..<$0]), as: UTF8.self) }
            }
        }
    }
}
