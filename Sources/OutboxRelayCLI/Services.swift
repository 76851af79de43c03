import Consumers
import FlyingFox
import Relay
import ServiceLifecycle
import Synchronization

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
/// FlyingFox's `run()` throws when `stop()` closes its socket; after a requested stop that
/// is the expected way out, not a failure (a failure here would cancel the whole group).
/// `stop(timeout: 0)`: the server is stopped last, after the drain, so any wait here comes
/// on top of drain-timeout. It still lets requests in progress finish; a longer timeout
/// only waited for the accept loop, a full second after every drain.
struct HTTPRunner: Service {
    let server: HTTPServer
    /// `host:port`, for the error when the port cannot be served.
    let address: String
    func run() async throws {
        let stopping = StopFlag()
        do {
            try await withGracefulShutdownHandler {
                try await withTaskCancellationHandler { try await server.run() } onCancel: {
                    stopping.set()
                    Task { await server.stop(timeout: 0) }
                }
            } onGracefulShutdown: {
                stopping.set()
                Task { await server.stop(timeout: 0) }
            }
        } catch where stopping.isSet {
            return
        } catch {
            throw CLIError("cannot serve /metrics, /healthz and /readyz on \(address): \(error). "
                           + "Fix: choose a free --http-port (or 0 to disable the endpoints), or another --http-host.", status: .unavailable)
        }
    }
}

/// A one-way flag shared with shutdown handlers.
private final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
