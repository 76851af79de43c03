import EphemeralServers
import Foundation

/// Runs a command-line tool (openssl, sha256sum) to completion and returns its exit status
/// and output. Output goes to a file, not a pipe, and the wait runs off Swift's
/// cooperative pool: a pipe read blocked a pool thread, and when a server the suite started
/// meanwhile inherited the pipe's write end, EOF never came and the whole test process
/// stalled (the pool has one thread per core: two on the machines this runs on).
func runTool(_ argv: [String], in directory: String? = nil, timeout: Duration = .seconds(60)) async throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "outbox-tool-\(UUID().uuidString).log"
    defer { try? FileManager.default.removeItem(atPath: log) }
    // `env -C` sets the working directory without a shell.
    let command = directory.map { ["/usr/bin/env", "-C", $0] + argv } ?? argv
    let process = try ChildProcess(command, outputPath: log)
    guard let status = await process.waitForExit(timeout: timeout) else {
        process.signal(SIGKILL)
        _ = await process.waitForExit()
        throw CheckerError("\(argv.first ?? "tool") did not finish within \(timeout): \(process.output.suffix(1_000))")
    }
    return (status, process.output)
}
