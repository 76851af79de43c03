import FlyingFox
import Foundation
import Logging
import Metrics
import Prometheus
import Relay
import Synchronization

/// Process-wide logging and metrics setup (each may be bootstrapped once per process).
enum Observability {
    static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = Mutex(false)

    static func bootstrap(logLevel: Logger.Level) {
        let first = bootstrapped.withLock { done in defer { done = true }; return !done }
        guard first else { return }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        var factory = PrometheusMetricsFactory(registry: registry)
        // Commit-to-ack latency lives in single milliseconds: fine buckets there.
        factory.durationHistogramBuckets["outbox_relay_commit_to_ack_seconds"] = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(3), .milliseconds(5), .milliseconds(7),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
        ]
        MetricsSystem.bootstrap(factory)
    }
}

/// `/metrics` (Prometheus text), `/healthz` (alive) and `/readyz` (streaming and
/// acknowledging) over FlyingFox.
struct HTTPEndpoints {
    let host: String
    let port: Int
    let health: RelayHealth?
    let extraReady: @Sendable () -> Bool

    func makeServer() async throws -> HTTPServer {
        let address: sockaddr_in
        do { address = try .inet(ip4: host, port: UInt16(port)) } catch {
            throw CLIError("http-host \(host) is not an IPv4 address. Fix: use e.g. 127.0.0.1 or 0.0.0.0.")
        }
        let server = HTTPServer(address: address, logger: .disabled)
        let health = self.health, extraReady = self.extraReady
        await server.appendRoute("GET /metrics") { _ in
            HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                         body: Data(Observability.registry.emitToBuffer()))
        }
        await server.appendRoute("GET /healthz") { _ in
            let live = health?.isLive ?? true
            let state = health.map { "\($0.current.state.rawValue) \($0.current.detail)" } ?? "ok"
            return HTTPResponse(statusCode: live ? .ok : .serviceUnavailable, body: Data((state + "\n").utf8))
        }
        await server.appendRoute("GET /readyz") { _ in
            let ready = (health?.isReady() ?? true) && extraReady()
            // The detail names the slot (and the shard, on a sharded relay): one line per shard in a fleet view.
            let state = health.map { "\($0.current.state.rawValue)\($0.current.detail.isEmpty ? "" : ": \($0.current.detail)")" } ?? "consumer"
            return HTTPResponse(statusCode: ready ? .ok : .serviceUnavailable, body: Data("\(ready ? "ready" : "not ready") (\(state))\n".utf8))
        }
        return server
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
