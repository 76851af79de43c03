/// Input the decoder cannot accept: truncated, malformed, or out of protocol order.
/// The message says what was expected and at which byte.
public struct PGOutputError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }
        public static let truncated = Code("truncated")
        public static let unknownMessage = Code("unknown_message")
        public static let malformed = Code("malformed")
        public static let outOfOrder = Code("out_of_order")
        public static let unknownRelation = Code("unknown_relation")
        public static let spillFailed = Code("spill_failed")
        public var description: String { raw }
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    public var description: String { "pgoutput \(code): \(message)" }
}
