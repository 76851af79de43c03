public import Foundation
#if canImport(Glibc)
public import Glibc
#endif

/// A child process the tests, the benchmark and the fault suite start and kill (the relay
/// binary, pg_recvlogical, kcat). Killed at process exit if still running.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let outputPath: String
    private let cleanupID: Int

    public init(_ argv: [String], outputPath: String, environment: [String: String]? = nil) throws {
        let pid = try spawnProcess(argv, outputPath: outputPath, environment: environment)
        self.pid = pid
        self.outputPath = outputPath
        cleanupID = ChildProcesses.atExit { kill(pid, SIGKILL) }
    }

    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// Waits for the process to exit and returns its status (128+signal when killed).
    public func waitForExit() async -> Int32 {
        let pid = self.pid
        let status = (try? await offPool { EphemeralServers.waitForExit(pid) }) ?? -1
        ChildProcesses.remove(cleanupID)
        return status
    }

    /// Waits at most `timeout` for the process to exit: its status, or nil when it is still
    /// running (the caller decides whether to kill it).
    public func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = exitStatusIfExited() { return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// The exit status if the process has exited (reaping it), nil while it runs. Once it
    /// returned a status, ask no more: the process is gone.
    public func exitStatusIfExited() -> Int32? {
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid {
            ChildProcesses.remove(cleanupID)
            return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
        return reaped < 0 && errno != EINTR ? -1 : nil
    }

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
}
