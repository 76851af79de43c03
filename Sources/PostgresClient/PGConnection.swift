internal import CLibPQ
import Dispatch
import Threading

/// A PostgreSQL connection over libpq for ordinary SQL.
///
/// Every libpq call runs on this connection's own serial dispatch queue, never on Swift's
/// cooperative pool, because libpq blocks. A connection runs one statement at a time:
/// do not share one across concurrent tasks that each expect their own transaction.
public final class PGConnection: Sendable {
    private let handle: LibPQHandle
    private let queue: DispatchQueue
    /// `host:port/database as user`, safe to log.
    public var target: ConnectionTarget { handle.target }
    /// The server process serving this connection (`pg_backend_pid()`).
    public let backendPID: Int32

    init(handle: LibPQHandle) {
        self.handle = handle
        self.queue = DispatchQueue(label: "outbox.pg.\(handle.target.host):\(handle.target.port)")
        self.backendPID = handle.backendPID
    }

    /// Connects to `dsn` (a `postgres://` URL or `key=value` string; libpq's TLS options
    /// such as `sslmode=verify-full` pass through). Default connect timeout: 10 s.
    public static func connect(_ dsn: String, applicationName: String = "outbox-relay",
                               connectTimeoutSeconds: Int = 10) async throws -> PGConnection {
        try await onNewThread {
            PGConnection(handle: try LibPQHandle(dsn: dsn, applicationName: applicationName,
                                                 connectTimeoutSeconds: connectTimeoutSeconds))
        }
    }

    /// Blocking connect, for code that already runs on a dedicated thread.
    public static func connectBlocking(_ dsn: String, applicationName: String = "outbox-relay",
                                       connectTimeoutSeconds: Int = 10) throws -> PGConnection {
        PGConnection(handle: try LibPQHandle(dsn: dsn, applicationName: applicationName,
                                             connectTimeoutSeconds: connectTimeoutSeconds))
    }

    /// Runs one statement; `$1…$n` bind `parameters`, which never touch the SQL text.
    @discardableResult
    public func query(_ sql: String, _ parameters: [PGValue] = []) async throws -> PGResult {
        try await run { try $0.execute(sql, parameters) }
    }

    /// Blocking form of `query`, for dedicated threads only.
    @discardableResult
    public func queryBlocking(_ sql: String, _ parameters: [PGValue] = []) throws -> PGResult {
        try queue.sync { try handle.execute(sql, parameters) }
    }

    /// Runs a multi-statement script with the simple-query protocol (migrations, setup).
    public func executeScript(_ sql: String) async throws {
        _ = try await run { try $0.executeScript(sql) }
    }

    /// Blocking form of `executeScript`, for dedicated threads only: several statements in
    /// one round trip (e.g. `BEGIN; DECLARE …`).
    public func executeScriptBlocking(_ sql: String) throws {
        _ = try queue.sync { try handle.executeScript(sql) }
    }

    /// Runs `body` in a transaction: COMMIT when it returns, ROLLBACK when it throws.
    public func transaction<T: Sendable>(
        isolation: String = "READ COMMITTED",
        _ body: (PGConnection) async throws -> T
    ) async throws -> T {
        try await query("BEGIN ISOLATION LEVEL \(isolation)")
        do {
            let value = try await body(self)
            try await query("COMMIT")
            return value
        } catch {
            _ = try? await query("ROLLBACK")
            throw error
        }
    }

    /// Blocking form of `transaction`, for dedicated threads only.
    public func transactionBlocking<T>(isolation: String = "READ COMMITTED", _ body: (PGConnection) throws -> T) throws -> T {
        try queryBlocking("BEGIN ISOLATION LEVEL \(isolation)")
        do {
            let value = try body(self)
            try queryBlocking("COMMIT")
            return value
        } catch {
            _ = try? queryBlocking("ROLLBACK")
            throw error
        }
    }

    /// False once the server closed the connection or the network broke.
    public var isHealthy: Bool { queue.sync { handle.isHealthy } }

    // MARK: LISTEN/NOTIFY

    /// Subscribes to a notification channel. The name is quoted as an identifier.
    public func listen(_ channel: String) async throws {
        try await query("LISTEN \(quoteIdentifier(channel))")
    }

    /// Blocks this connection's queue until a notification arrives, `timeout` passes, or
    /// `wakeFD` becomes readable; returns the notifications received (possibly none).
    public func waitForNotifications(timeout: Duration, wakeFD: Int32 = -1) async throws -> [PGNotification] {
        try await run { handle in try PGConnection.waitForNotifications(handle, timeout: timeout, wakeFD: wakeFD) }
    }

    /// Blocking form of `waitForNotifications`, for dedicated threads only.
    public func waitForNotificationsBlocking(timeout: Duration, wakeFD: Int32 = -1) throws -> [PGNotification] {
        try queue.sync { try PGConnection.waitForNotifications(handle, timeout: timeout, wakeFD: wakeFD) }
    }

    private static func waitForNotifications(_ handle: LibPQHandle, timeout: Duration, wakeFD: Int32) throws -> [PGNotification] {
        do {
            var collected = try PGConnection.drainNotifications(handle)
            if !collected.isEmpty { return collected }
            let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            if try handle.waitReadable(timeoutMilliseconds: ms, wakeFD: wakeFD) {
                guard PQconsumeInput(handle.conn) == 1 else { throw handle.connectionError(query: nil) }
                collected = try PGConnection.drainNotifications(handle)
            }
            return collected
        }
    }

    private static func drainNotifications(_ handle: LibPQHandle) throws -> [PGNotification] {
        var out: [PGNotification] = []
        while let notify = PQnotifies(handle.conn) {
            out.append(PGNotification(channel: String(cString: notify.pointee.relname),
                                      payload: String(cString: notify.pointee.extra),
                                      pid: notify.pointee.be_pid))
            PQfreemem(notify)
        }
        if !handle.isHealthy { throw handle.connectionError(query: nil) }
        return out
    }

    private func run<T: Sendable>(_ work: @escaping @Sendable (LibPQHandle) throws -> T) async throws -> T {
        let handle = self.handle
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work(handle) }) }
        }
    }
}

/// A NOTIFY received on a LISTENing connection.
public struct PGNotification: Sendable, Equatable {
    public let channel: String
    public let payload: String
    public let pid: Int32
}

/// Double-quotes an identifier for the rare statements that cannot take parameters
/// (LISTEN, CREATE ROLE…), escaping embedded quotes.
public func quoteIdentifier(_ name: String) -> String {
    "\"" + name.replacingAll("\"", with: "\"\"") + "\""
}

/// Single-quotes a literal for statements that cannot take parameters (e.g. replication
/// commands), escaping embedded quotes.
public func quoteLiteral(_ value: String) -> String {
    "'" + value.replacingAll("'", with: "''") + "'"
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(count)
        for ch in self { if ch == target { out += replacement } else { out.append(ch) } }
        return out
    }
}

/// Runs blocking work on a fresh thread and resumes the caller with its result.
func onNewThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = BlockingThread { continuation.resume(with: Result { try work() }) }
        thread.start()
    }
}
