import EphemeralServers
import Foundation
import Testing

/// The demo's Ctrl-C handling (swift-service-lifecycle's `UnixSignalsSequence`): SIGINT in
/// the middle of the traffic stops it early, still verifies and prints the summary, and
/// stops the demo's own PostgreSQL and broker instead of leaving them running.
@Suite("outbox-relay demo: interrupt")
struct DemoInterruptTests {
    @Test("SIGINT during the traffic stops the demo early and stops its servers")
    func interruptStopsEarlyAndCleansUp() async throws {
        let log = NSTemporaryDirectory() + "demo-interrupt-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let demo = try ChildProcess([try relayBinary(), "demo", "--duration", "10m", "--rate", "50", "--users", "20",
                                     "--seats", "5000", "--http-port", "0"], outputPath: log)
        let trafficStarted = await eventually(timeout: .seconds(120)) { demo.output.contains("driving traffic") }
        #expect(trafficStarted, "\(demo.output.suffix(2_000))")
        let postgresPort = demo.output.firstMatch(of: /PostgreSQL on 127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) }
        #expect(postgresPort != nil, "\(demo.output.suffix(2_000))")
        try await Task.sleep(for: .seconds(2))
        demo.signal(SIGINT)
        // Well before the 10 minutes of traffic it was asked for.
        let status = await demo.waitForExit(timeout: .seconds(120))
        if status == nil { demo.signal(SIGKILL); _ = await demo.waitForExit() }
        #expect(status != nil, "the demo ignored SIGINT: \(demo.output.suffix(2_000))")
        #expect(demo.output.contains("interrupted: stopping early"), "\(demo.output.suffix(2_000))")
        #expect(demo.output.contains("stopping the broker and PostgreSQL"), "\(demo.output.suffix(2_000))")
        if let postgresPort { #expect(!isLoopbackPortOpen(postgresPort), "the demo's PostgreSQL outlived it") }
    }
}
