import Foundation
import HTTPEndpoint
import Logging
import Metrics
import Prometheus
import Relay
import Synchronization

/// Process-wide logging and metrics setup (each may be bootstrapped once per process).
enum Observability {
    static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = Mutex(false)

    private static let format = Mutex(LogFormat.text)
    /// The format log lines are written in (text until `bootstrap` says otherwise).
    static var logFormat: LogFormat { format.withLock { $0 } }

    static func bootstrap(logLevel: Logger.Level, format: LogFormat = .text) {
        let first = bootstrapped.withLock { done in defer { done = true }; return !done }
        guard first else { return }
        self.format.withLock { $0 = format }
        LoggingSystem.bootstrap { label in
            switch format {
            case .json:
                return JSONLogHandler(component: label, logLevel: logLevel)
            case .text:
                return TextLogHandler(label: label, logLevel: logLevel)
            }
        }
        var factory = PrometheusMetricsFactory(registry: registry)
        // Commit-to-ack latency, and its database share, live in single milliseconds: fine
        // buckets there, the same for both so the two histograms compare bucket by bucket.
        let latencyBuckets: [Duration] = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(3), .milliseconds(5), .milliseconds(7),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
        ]
        factory.durationHistogramBuckets["outbox_relay_commit_to_ack_seconds"] = latencyBuckets
        factory.durationHistogramBuckets["outbox_relay_commit_to_capture_seconds"] = latencyBuckets
        // Messages per consumer transaction: 1 (batching off) up to batch-size's 10,000 cap.
        factory.valueHistogramBuckets["outbox_consumer_batch_size_messages"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 4_096, 10_000]
        MetricsSystem.bootstrap(factory)
        // Prometheus's info-metric convention: constant 1, the facts in labels.
        Metrics.Gauge(label: "outbox_relay_build_info", dimensions: [("version", BuildInfo.version)]).record(1)
    }
}

/// `/metrics` (Prometheus text), `/healthz` (alive) and `/readyz` (streaming and
/// acknowledging), served by `EndpointServer`.
struct HTTPEndpoints {
    let host: String
    let port: Int
    let health: RelayHealth?
    /// Why the process is not ready beyond `health` (the consumer's stall), or nil.
    let notReadyBecause: @Sendable () -> String?
    /// Set on every scrape to what /readyz would answer then (1 ready, 0 not), so alerts see
    /// readiness without probing /readyz: `outbox_relay_ready{slot}` or `outbox_consumer_ready`.
    let readyGauge: Metrics.Gauge

    /// The server, not yet listening: `HTTPRunner` (or the demo) starts it.
    func makeServer() throws -> EndpointServer {
        guard let address = ListenAddress(host: host, port: port) else {
            throw CLIError("http-host \(host) is not an IPv4 or IPv6 address. Fix: use e.g. 127.0.0.1, 0.0.0.0, ::1, [::1] or ::.",
                           status: .usage)
        }
        let health = self.health, notReadyBecause = self.notReadyBecause, readyGauge = self.readyGauge
        var routes = Routes()
        routes.get("/metrics") {
            readyGauge.record((health?.isReady() ?? true) && notReadyBecause() == nil ? 1 : 0)
            return Response(status: 200, contentType: "text/plain; version=0.0.4", body: Observability.registry.emitToBuffer())
        }
        routes.get("/healthz") {
            let live = health?.isLive ?? true
            let state = health.map { "\($0.current.state.rawValue) \($0.current.detail)" } ?? "ok"
            return Response(status: live ? 200 : 503, text: state + "\n")
        }
        routes.get("/readyz") {
            let reason = notReadyBecause()
            let ready = (health?.isReady() ?? true) && reason == nil
            // The detail names the slot (and the shard, on a sharded relay): one line per shard in a fleet view.
            let state = health.map { "\($0.current.state.rawValue)\($0.current.detail.isEmpty ? "" : ": \($0.current.detail)")" }
                ?? "consumer\(reason.map { ": " + $0 } ?? "")"
            let refusal = health?.kafkaRefusedBecause.map { ": " + $0 } ?? ""
            return Response(status: ready ? 200 : 503, text: "\(ready ? "ready" : "not ready") (\(state))\(refusal)\n")
        }
        return EndpointServer(address: address, routes: routes)
    }
}
