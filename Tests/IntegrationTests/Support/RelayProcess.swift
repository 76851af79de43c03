import EphemeralServers
import Foundation

/// The `outbox-relay` binary next to this test bundle (SwiftPM builds it for the tests,
/// which depend on the CLI target).
func relayBinary() throws -> String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // The xctest bundle may be a directory on some layouts: walk up until the binary shows up.
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("outbox-relay").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw CheckerError("the outbox-relay binary was not found next to the test bundle (\(exe)). Fix: run the tests with `bash scripts/test`, which builds it.")
}

/// Starts `outbox-relay run` as a real process, so tests can kill -9 it. The HTTP
/// endpoints are on (a free port), as in production: a graceful stop must work with them.
/// `bootstrapServers` defaults to the context's broker (a mock cluster's, for instance).
func startRelayProcess(_ ctx: TestContext, bootstrapServers: String? = nil, extra: [String] = [], logName: String,
                       httpPort: Int = freeLoopbackPort()) throws -> ChildProcess {
    let log = NSTemporaryDirectory() + "relay-\(ctx.databaseName)-\(logName).log"
    return try ChildProcess([try relayBinary(), "run", "--database-url", ctx.databaseURL,
                             "--kafka-bootstrap-servers", bootstrapServers ?? ctx.bootstrapServers, "--slot", ctx.slotName,
                             "--http-port", String(httpPort), "--log-level", "notice", "--set", "sweeper=false",
                             "--set", "spill-dir=\(NSTemporaryDirectory())"] + extra,
                            outputPath: log)
}

extension ChildProcess {
    /// SIGTERM, then the exit status; nil (after a SIGKILL) when it did not exit within
    /// `timeout`, so a relay that ignores SIGTERM fails the test instead of hanging it.
    func terminate(timeout: Duration = .seconds(60)) async -> Int32? {
        signal(SIGTERM)
        if let status = await waitForExit(timeout: timeout) { return status }
        signal(SIGKILL)
        _ = await waitForExit()
        return nil
    }
}
