internal import CLibPQ
#if canImport(Glibc)
import Glibc
#endif

/// Owns one `PGconn*` and performs blocking libpq calls on it.
///
/// Not thread-safe: callers serialise access (PGConnection through its serial queue,
/// the replication stream by using it from one dedicated thread).
final class LibPQHandle: @unchecked Sendable {
    let conn: OpaquePointer
    let target: ConnectionTarget

    /// Opens a connection. `extra` keywords (e.g. `replication=database`) are added before
    /// the DSN is expanded, so settings written in the DSN win over these defaults.
    init(dsn: String, applicationName: String, connectTimeoutSeconds: Int, extra: [(String, String)] = []) throws {
        target = ConnectionTarget(parsing: dsn)
        var pairs: [(String, String)] = [
            ("connect_timeout", String(connectTimeoutSeconds)),
            ("application_name", applicationName),
            ("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
        ]
        pairs.append(("dbname", dsn))
        pairs += extra  // after dbname so that e.g. replication=database cannot be overridden by the DSN
        let conn = withCStrings(pairs.map(\.0)) { keys in
            withCStrings(pairs.map(\.1)) { values in
                PQconnectdbParams(keys, values, 1)
            }
        }
        guard let conn else {
            throw PGError(code: .connectionFailed, message: "libpq could not allocate a connection", target: target.description)
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = LibPQHandle.errorText(conn)
            PQfinish(conn)
            throw PGError(code: .connectionFailed, message: message,
                          target: target.description)
        }
        PQsetNoticeProcessor(conn, { _, _ in }, nil)  // notices (e.g. "already exists, skipping") are not errors
        self.conn = conn
    }

    deinit { PQfinish(conn) }

    var isHealthy: Bool { PQstatus(conn) == CONNECTION_OK }
    var socket: Int32 { PQsocket(conn) }
    var backendPID: Int32 { PQbackendPID(conn) }

    static func errorText(_ conn: OpaquePointer) -> String {
        String(cString: PQerrorMessage(conn)).trimmingTrailingWhitespace
    }

    /// Runs one statement with out-of-line parameters and returns its rows.
    func execute(_ sql: String, _ params: [PGValue]) throws -> PGResult {
        let result: OpaquePointer? = sql.withCString { sqlPointer in
            if params.isEmpty {
                return PQexecParams(conn, sqlPointer, 0, nil, nil, nil, nil, 0)
            }
            return withParameterBuffers(params) { values, lengths, formats in
                PQexecParams(conn, sqlPointer, Int32(params.count), nil, values, lengths, formats, 0)
            }
        }
        return try consume(result, query: sql)
    }

    /// Runs one or more statements with the simple-query protocol (no parameters),
    /// e.g. a migration file. Returns the last result.
    func executeScript(_ sql: String) throws -> PGResult? {
        guard PQsendQuery(conn, sql) == 1 else { throw connectionError(query: sql) }
        var last: PGResult?
        var firstError: PGError?
        while let result = PQgetResult(conn) {
            do {
                let rows = try consume(result, query: sql)
                last = rows
            } catch let error as PGError {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
        return last
    }

    /// Converts a finished `PGresult*` into rows or an error, and frees it.
    func consume(_ result: OpaquePointer?, query: String) throws -> PGResult {
        guard let result else { throw connectionError(query: query) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            return PGResult(result, query: query)
        default:
            throw resultError(result, query: query)
        }
    }

    func resultError(_ result: OpaquePointer, query: String?) -> PGError {
        func field(_ code: Int32) -> String? {
            guard let value = PQresultErrorField(result, code) else { return nil }
            return String(cString: value)
        }
        let primary = field(Int32(UInt8(ascii: "M"))) ?? String(cString: PQresultErrorMessage(result)).trimmingTrailingWhitespace
        let lost = !isHealthy
        return PGError(code: lost ? .connectionLost : .queryFailed,
                       message: primary.isEmpty ? LibPQHandle.errorText(conn) : primary,
                       sqlState: field(Int32(UInt8(ascii: "C"))),
                       detail: field(Int32(UInt8(ascii: "D"))),
                       hint: field(Int32(UInt8(ascii: "H"))),
                       query: query, target: target.description)
    }

    func connectionError(query: String?) -> PGError {
        PGError(code: isHealthy ? .queryFailed : .connectionLost, message: LibPQHandle.errorText(conn),
                query: query, target: target.description)
    }

    /// Waits until the socket is readable, `wakeFD` is signalled, or the timeout passes.
    /// Returns true when the socket is readable.
    func waitReadable(timeoutMilliseconds: Int32, wakeFD: Int32 = -1) throws -> Bool {
        // On the stack: this runs on every wake-up of the capture thread.
        let (rc, readable) = withUnsafeTemporaryAllocation(of: pollfd.self, capacity: 2) { fds in
            fds[0] = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            fds[1] = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            let rc = poll(fds.baseAddress!, wakeFD >= 0 ? 2 : 1, timeoutMilliseconds)
            return (rc, fds[0].revents != 0)
        }
        if rc < 0 && errno != EINTR {
            throw PGError(code: .connectionLost, message: "poll failed: errno \(errno)", target: target.description)
        }
        return rc > 0 && readable
    }
}

/// Keeps C strings alive for the duration of a libpq call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let duplicated = strings.map { strdup($0) }
    defer { duplicated.forEach { free($0) } }
    let pointers = duplicated.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

private func withParameterBuffers<R>(
    _ params: [PGValue],
    _ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<Int32>, UnsafePointer<Int32>) -> R
) -> R {
    var storage: [UnsafeMutableRawPointer?] = []
    var lengths: [Int32] = []
    var formats: [Int32] = []
    storage.reserveCapacity(params.count)
    for param in params {
        switch param {
        case .null:
            storage.append(nil); lengths.append(0); formats.append(0)
        case .text(let text):
            storage.append(UnsafeMutableRawPointer(strdup(text))); lengths.append(0); formats.append(0)
        case .bytea(let bytes):
            let buffer = malloc(max(bytes.count, 1))!
            bytes.withUnsafeBytes { if let base = $0.baseAddress { buffer.copyMemory(from: base, byteCount: bytes.count) } }
            storage.append(buffer); lengths.append(Int32(bytes.count)); formats.append(1)
        }
    }
    defer { storage.forEach { free($0) } }
    let pointers = storage.map { $0.map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) } }
    return pointers.withUnsafeBufferPointer { values in
        lengths.withUnsafeBufferPointer { lens in
            formats.withUnsafeBufferPointer { fmts in
                body(values.baseAddress!, lens.baseAddress!, fmts.baseAddress!)
            }
        }
    }
}

extension String {
    var trimmingTrailingWhitespace: String {
        var view = Substring(self)
        while let last = view.last, last.isWhitespace { view = view.dropLast() }
        return String(view)
    }
}
