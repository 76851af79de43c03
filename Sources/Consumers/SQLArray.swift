/// PostgreSQL array literals for array parameters sent in text format, so a whole batch
/// goes to the server as a few `unnest`-ed parameters. Pure.
enum SQLArray {
    /// `{1,2,3}`: numbers need no quoting.
    static func bigints(_ values: some Sequence<Int64>) -> String {
        "{" + values.lazy.map(String.init).joined(separator: ",") + "}"
    }

    /// `{"a","b\"c"}`: every element quoted, with `"` and `\` escaped, so commas, braces,
    /// spaces and the word NULL inside an element stay data.
    static func texts(_ values: some Sequence<[UInt8]>) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        for value in values {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            for byte in value {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
