/// A query parameter. Values travel separately from the SQL text (PQexecParams), so nothing
/// is ever interpolated into a statement.
public enum PGValue: Sendable, Hashable {
    case null
    /// Sent in text format; the server converts it to the parameter's type.
    case text(String)
    /// Sent in binary format, for `bytea` parameters.
    case bytea([UInt8])

    public init(_ value: String?) { self = value.map(PGValue.text) ?? .null }
    public init(_ value: Int) { self = .text(String(value)) }
    public init(_ value: Int64) { self = .text(String(value)) }
    public init(_ value: Int32) { self = .text(String(value)) }
    public init(_ value: Double) { self = .text(String(value)) }
    public init(_ value: Bool) { self = .text(value ? "t" : "f") }
    public init(_ value: [UInt8]) { self = .bytea(value) }
}

extension PGValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int) { self = .text(String(value)) }
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .text(value ? "t" : "f") }
}

extension PGValue {
    public static func int(_ value: some BinaryInteger) -> PGValue { .text(String(value)) }
}
