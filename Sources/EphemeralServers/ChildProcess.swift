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

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
}
