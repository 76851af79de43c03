import Consumers
import HTTPEndpoint
import Relay
import ServiceLifecycle

/// Adapters that let ServiceLifecycle run and gracefully stop our components on SIGTERM.
///
/// (`RelayService` is a `Service` itself.) The consumers run their blocking work on dedicated threads, which task
/// cancellation cannot reach, so cancellation is turned into the same `stop()` as a
/// graceful shutdown: whatever ends the group, the process drains and exits instead of
/// waiting forever on a thread nobody told to stop.
struct ConsumerRunner: Service {
    let consumer: ConsumerService
    func run() async throws {
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler { try await consumer.run() } onGracefulShutdown: { consumer.stop() }
        } onCancel: { consumer.stop() }
    }
}

/// Serves /metrics, /healthz and /readyz until the group shuts down. List it before the
/// relay or consumers: ServiceGroup stops services in reverse order, so the endpoints keep
/// answering (readiness says "draining") while the work drains.
///
/// The port is bound when the service starts, so a taken port fails the group at once with
/// the fix. The server closes last, after the drain, and at once: nothing waits for a
/// scrape in progress on top of drain-timeout.
struct HTTPRunner: Service {
    let server: EndpointServer
    func run() async throws {
        try server.startServing()
        // Graceful shutdown returns; cancellation throws. Either way the server stops.
        try? await gracefulShutdown()
        server.stop()
        await server.stopped()
    }
}

extension EndpointServer {
    /// `start()`, with the error a user can act on: the address, the cause and the fix.
    func startServing() throws {
        do {
            try start()
        } catch {
            throw CLIError("cannot serve /metrics, /healthz and /readyz: \(error). "
                           + "Fix: choose a free --http-port (or 0 to disable the endpoints), or another --http-host.", status: .unavailable)
        }
    }
}
