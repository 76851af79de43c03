/// An error from PostgreSQL or libpq, with the server's SQLSTATE and fields when there is one.
///
/// Messages never contain a password or a full connection string: connection errors name
/// only `host:port/database` (see `ConnectionTarget`).
public struct PGError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Extensible without breaking `switch` users.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case connectionFailed, connectionLost, queryFailed, decodeFailed, protocolViolation, timedOut, invalidArgument
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// Could not open a connection (refused, unreachable, authentication, bad options).
        public static let connectionFailed = Code(.connectionFailed)
        /// An open connection broke.
        public static let connectionLost = Code(.connectionLost)
        /// The server rejected a statement; see `sqlState`.
        public static let queryFailed = Code(.queryFailed)
        /// A result value could not be converted to the requested Swift type.
        public static let decodeFailed = Code(.decodeFailed)
        /// The server sent something this client does not expect.
        public static let protocolViolation = Code(.protocolViolation)
        /// An operation did not finish within its deadline.
        public static let timedOut = Code(.timedOut)
        /// A caller passed an argument that cannot be sent.
        public static let invalidArgument = Code(.invalidArgument)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The five-character SQLSTATE, e.g. `23505` for a unique violation.
    public var sqlState: String?
    /// The primary human-readable message.
    public var message: String
    public var detail: String?
    public var hint: String?
    /// The statement that failed, truncated; parameters are never included.
    public var query: String?
    /// `host:port/database` without credentials, when known.
    public var target: String?
    /// For a connection that could not be opened: the cause, the fix, and whether trying
    /// again later can help. Nil when libpq's message is not recognised.
    public var connectFailure: ConnectFailureAdvice? {
        code == .connectionFailed ? ConnectFailureAdvice.classify(message) : nil
    }
    public var file: String
    public var line: Int

    public init(code: Code, message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil,
                query: String? = nil, target: String? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.query = query.map { $0.count > 200 ? String($0.prefix(200)) + "…" : $0 }
        self.target = target
        self.file = file
        self.line = line
    }

    public var description: String {
        var text = "PostgreSQL \(code)"
        if let target { text += " (\(target))" }
        text += ": " + (code == .connectionFailed ? ConnectFailureAdvice.explain(message) : message)
        if let sqlState { text += " [SQLSTATE \(sqlState)]" }
        if let detail { text += " DETAIL: \(detail)" }
        if let hint { text += " HINT: \(hint)" }
        if let query { text += " QUERY: \(query)" }
        return text
    }

    /// Well-known SQLSTATEs the project reacts to.
    public enum State {
        public static let uniqueViolation = "23505"
        public static let objectInUse = "55006"
        public static let undefinedObject = "42704"
        public static let duplicateObject = "42710"
        public static let insufficientPrivilege = "42501"
        public static let serializationFailure = "40001"
        public static let deadlockDetected = "40P01"
        public static let lockNotAvailable = "55P03"
        public static let adminShutdown = "57P01"
        public static let objectNotInPrerequisiteState = "55000"
    }
}
