import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway Tansu broker (Kafka protocol, in-memory storage) on a free loopback port.
///
/// Restarting it loses every message, so outages are simulated with `freeze()` (SIGSTOP)
/// and `thaw()` (SIGCONT), which keep its state.
public final class TansuBroker: Sendable {
    public let port: Int
    public let pid: Int32
    private let cleanupID: Int
    private let logPath: String

    /// `host:port` for librdkafka's `bootstrap.servers`.
    public var bootstrapServers: String { "127.0.0.1:\(port)" }

    private init(port: Int, pid: pid_t, logPath: String) {
        self.port = port
        self.pid = pid
        self.logPath = logPath
        self.cleanupID = ChildProcesses.atExit { kill(pid, SIGCONT); kill(pid, SIGKILL) }
    }

    /// Starts a broker and waits until it accepts connections. Throws `ServerBinaryMissing`
    /// when Tansu is not installed.
    /// - Parameters:
    ///   - extraArguments: more `tansu broker` options, e.g. `--authentication` (SASL SCRAM
    ///     required on every connection).
    ///   - advertisedPort: the loopback port clients are told to use after bootstrap, when a
    ///     proxy sits in front of the broker (default: the broker's own port).
    public static func start(timeout: Duration = .seconds(15), extraArguments: [String] = [],
                             advertisedPort: Int? = nil) async throws -> TansuBroker {
        let binary = try ServerBinaries.tansu()
        return try await offPool {
            var lastError: (any Error)?
            for _ in 0..<3 {
                let port = freeLoopbackPort()
                let logPath = NSTemporaryDirectory() + "tansu-\(port)-\(UUID().uuidString.prefix(8)).log"
                let pid = try spawnProcess([binary, "broker",
                                            "--listener-url", "tcp://127.0.0.1:\(port)",
                                            "--advertised-listener-url", "tcp://127.0.0.1:\(advertisedPort ?? port)",
                                            "--storage-engine", "memory://tansu/",
                                            "--cluster-id", "outbox-relay"] + extraArguments, outputPath: logPath)
                let broker = TansuBroker(port: port, pid: pid, logPath: logPath)
                let deadline = ContinuousClock.now + timeout
                // An open port alone is not proof: between `freeLoopbackPort` and Tansu's bind,
                // a parallel test can take the port, and its listener then answers for a broker
                // that failed to bind (Tansu reports AddrInUse and its listener never runs).
                // Tansu logs "ready in" only once its own listener is bound.
                while ContinuousClock.now < deadline, kill(pid, 0) == 0 {
                    let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                    if log.contains("AddrInUse") { break }
                    if log.contains("ready in"), isLoopbackPortOpen(port) { return broker }
                    usleep(20_000)
                }
                let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                broker.stop()
                lastError = CommandFailed(command: "tansu broker on port \(port)", status: -1,
                                          output: "did not accept connections within \(timeout):\n\(output)")
            }
            throw lastError!
        }
    }

    /// Creates `topic` with `partitions` partitions through Tansu's own CLI (auto-creation
    /// on first produce gives every topic the broker's default count). Blocks; off the pool.
    public func createTopic(_ topic: String, partitions: Int) async throws {
        let binary = try ServerBinaries.tansu()
        _ = try await offPool { [port] in
            try ChildProcesses.run(binary, ["topic", "create", "--broker", "tcp://127.0.0.1:\(port)",
                                            "--partitions", String(partitions), topic])
        }
    }

    /// Suspends the broker: connections stay open but nothing is answered.
    public func freeze() { kill(pid, SIGSTOP) }
    /// Resumes a frozen broker with its data intact.
    public func thaw() { kill(pid, SIGCONT) }

    /// The broker's own log, for diagnosing a failed test.
    public func logTail(maxBytes: Int = 8_000) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return String(text.suffix(maxBytes))
    }

    /// `stop` for async code: waiting for the process to exit blocks, so it runs off the pool.
    public func stop() async {
        _ = try? await offPool { [self] in stop() }
    }

    /// Terminates the broker and waits for it to exit. Blocks.
    public func stop() {
        kill(pid, SIGCONT)
        if kill(pid, SIGTERM) == 0 {
            _ = waitForExit(pid)
        }
        ChildProcesses.remove(cleanupID)
        try? FileManager.default.removeItem(atPath: logPath)
    }
}
