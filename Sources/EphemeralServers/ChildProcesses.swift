import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A command that exited non-zero, with its output so the cause is visible in test logs.
public struct CommandFailed: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public let output: String
    public var description: String { "`\(command)` exited with \(status):\n\(output)" }
}

/// Runs helper commands and remembers what must be torn down at process exit, so the
/// demo and a crashed test run leave no server behind.
enum ChildProcesses {
    private struct State {
        var cleanups: [Int: @Sendable () -> Void] = [:]
        var nextID = 0
        var installedExitHook = false
    }
    private static let state = Mutex(State())

    /// Registers `cleanup` to run at normal process exit; returns a handle to unregister it.
    static func atExit(_ cleanup: @escaping @Sendable () -> Void) -> Int {
        state.withLock { state in
            if !state.installedExitHook {
                state.installedExitHook = true
                atexit { ChildProcesses.runAll() }
            }
            state.nextID += 1
            state.cleanups[state.nextID] = cleanup
            return state.nextID
        }
    }

    static func remove(_ id: Int) {
        _ = state.withLock { $0.cleanups.removeValue(forKey: id) }
    }

    static func runAll() {
        let all = state.withLock { state in
            defer { state.cleanups.removeAll() }
            return Array(state.cleanups.values)
        }
        for cleanup in all { cleanup() }
    }

    /// True when this process runs as root, in which case PostgreSQL tools run as the
    /// `postgres` OS user because initdb and postgres refuse to run as root.
    static var isRoot: Bool { geteuid() == 0 }

    /// Runs `executable` synchronously (callers hop off the cooperative pool first),
    /// optionally as another OS user through runuser, and returns its combined output.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], asUser user: String? = nil,
                    environment: [String: String]? = nil) throws -> String {
        let argv = (user.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []) + [executable] + arguments
        let outputPath = NSTemporaryDirectory() + "outbox-cmd-\(UUID().uuidString).out"
        defer { unlink(outputPath) }
        let pid = try spawnProcess(argv, outputPath: outputPath, environment: environment)
        let status = waitForExit(pid)
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw CommandFailed(command: argv.joined(separator: " "), status: status, output: output)
        }
        return output
    }
}

/// Runs blocking harness work (process spawns, waits) on a plain thread so that it never
/// occupies Swift's cooperative thread pool.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try work() })
        }
    }
}
