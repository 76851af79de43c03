internal import CLibPQ
import Threading
#if canImport(Glibc)
import Glibc
#endif

/// A `replication=database` connection: replication commands (IDENTIFY_SYSTEM,
/// CREATE_REPLICATION_SLOT, START_REPLICATION), plain SQL, and the CopyBoth stream.
///
/// Its methods block. Use it from one dedicated thread (see `BlockingThread`); only
/// `wake()` may be called from other threads, to interrupt a wait in `readCopyData`.
public final class ReplicationConnection: @unchecked Sendable {
    private let handle: LibPQHandle
    private let wakeSignal = WakeSignal()
    public var target: ConnectionTarget { handle.target }
    public var backendPID: Int32 { handle.backendPID }

    /// Connects with `replication=database`. Default connect timeout: 10 s.
    public init(dsn: String, applicationName: String = "outbox-relay", connectTimeoutSeconds: Int = 10) throws {
        handle = try LibPQHandle(dsn: dsn, applicationName: applicationName,
                                 connectTimeoutSeconds: connectTimeoutSeconds,
                                 extra: [("replication", "database")])
    }

    /// Runs a replication command or SQL statement (simple-query protocol).
    @discardableResult
    public func execute(_ command: String) throws -> PGResult {
        try handle.consume(PQexec(handle.conn, command), query: command)
    }

    /// Sends START_REPLICATION and switches the connection to CopyBoth mode.
    public func startReplication(_ command: String) throws {
        guard let result = PQexec(handle.conn, command) else { throw handle.connectionError(query: command) }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_BOTH else {
            throw handle.resultError(result, query: command)
        }
    }

    /// What `readCopyData` found.
    public enum ReadOutcome {
        /// `body` was called with one CopyData message.
        case message
        /// Nothing arrived before the timeout.
        case timedOut
        /// `wake()` was called.
        case woken
    }

    /// The socket's receive low-water mark (SO_RCVLOWAT): the kernel reports the socket
    /// readable, and wakes a waiting reader, only once this many bytes have arrived. 1 is
    /// the kernel's default. A Unix-domain socket ignores it when polled (it behaves as 1).
    public private(set) var receiveLowWater = 1

    /// Sets `receiveLowWater`; false (and the mark unchanged) when the kernel refuses.
    /// `readCopyData` then bounds its waits itself, and `endCopy` resets the mark to 1: a
    /// blocking libpq call waits on the same socket, and a reply smaller than the mark would
    /// never wake it.
    @discardableResult
    public func setReceiveLowWater(_ bytes: Int) -> Bool {
        var value = Int32(clamping: max(1, bytes))
        guard setsockopt(PQsocket(handle.conn), SOL_SOCKET, SO_RCVLOWAT, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            return false
        }
        receiveLowWater = Int(value)
        return true
    }

    /// Waits up to `timeoutMilliseconds` for the next CopyData message and passes its bytes
    /// to `body` without copying (the buffer is freed when `body` returns). Throws when the
    /// stream ends or the connection breaks, with the server's error if it sent one.
    /// With a low-water mark above 1, a wait that times out still reads what arrived below
    /// the mark (a keepalive, the tail of a backlog).
    public func readCopyData(timeoutMilliseconds: Int32,
                             _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> ReadOutcome {
        var waited = false
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(handle.conn, &buffer, 1)
            if length > 0, let buffer {
                defer { PQfreemem(buffer) }
                try body(UnsafeRawBufferPointer(start: buffer, count: Int(length)))
                return .message
            }
            if length == -1 { throw streamEnded() }
            if length == -2 { throw handle.connectionError(query: nil) }
            // length == 0: nothing complete buffered; wait for the socket once per call.
            if waited { return .timedOut }
            let readable = try handle.waitReadable(timeoutMilliseconds: timeoutMilliseconds, wakeFD: wakeSignal.fd)
            if drainWake() { return .woken }
            if !readable && receiveLowWater <= 1 { return .timedOut }
            guard PQconsumeInput(handle.conn) == 1 else { throw handle.connectionError(query: nil) }
            waited = true
        }
    }

    /// Returns the next buffered CopyData message without waiting or reading the socket;
    /// nil when none is complete. Lets a reader drain a burst without a syscall per message.
    public func readBufferedCopyData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        var buffer: UnsafeMutablePointer<CChar>?
        let length = PQgetCopyData(handle.conn, &buffer, 1)
        if length > 0, let buffer {
            defer { PQfreemem(buffer) }
            try body(UnsafeRawBufferPointer(start: buffer, count: Int(length)))
            return true
        }
        if length == -1 { throw streamEnded() }
        if length == -2 { throw handle.connectionError(query: nil) }
        return false
    }

    /// Sends one CopyData message (e.g. a standby status update) and flushes it.
    public func sendCopyData(_ bytes: [UInt8]) throws {
        let ok = bytes.withUnsafeBytes { raw in
            PQputCopyData(handle.conn, raw.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(raw.count))
        }
        guard ok == 1, PQflush(handle.conn) == 0 else { throw handle.connectionError(query: nil) }
    }

    /// Ends the COPY from our side so the server can finish cleanly (graceful shutdown).
    public func endCopy() {
        if receiveLowWater > 1 { setReceiveLowWater(1) }
        _ = PQputCopyEnd(handle.conn, nil)
        _ = PQflush(handle.conn)
        while let result = PQgetResult(handle.conn) {
            // Drain remaining CopyData and the final results; a failure here is irrelevant
            // because the session is ending.
            if PQresultStatus(result) == PGRES_COPY_BOTH || PQresultStatus(result) == PGRES_COPY_OUT {
                var buffer: UnsafeMutablePointer<CChar>?
                while PQgetCopyData(handle.conn, &buffer, 0) > 0 { PQfreemem(buffer) }
            }
            PQclear(result)
        }
    }

    /// Interrupts a wait in `readCopyData` from another thread.
    public func wake() { wakeSignal.signal() }

    private func drainWake() -> Bool { wakeSignal.drain() }

    private func streamEnded() -> PGError {
        // COPY finished: collect the server's final result, which carries the reason.
        while let result = PQgetResult(handle.conn) {
            defer { PQclear(result) }
            let status = PQresultStatus(result)
            if status != PGRES_COMMAND_OK && status != PGRES_COPY_BOTH && status != PGRES_COPY_OUT {
                return handle.resultError(result, query: nil)
            }
        }
        return PGError(code: .connectionLost, message: "the server ended the replication stream: \(LibPQHandle.errorText(handle.conn))",
                       target: handle.target.description)
    }
}
