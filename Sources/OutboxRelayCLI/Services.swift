import Consumers
import FlyingFox
import Relay
import ServiceLifecycle

/// Adapters that let ServiceLifecycle run and gracefully stop our components on SIGTERM.
struct RelayRunner: Service {
    let relay: RelayService
    func run() async throws {
        try await withGracefulShutdownHandler { try await relay.run() } onGracefulShutdown: { relay.stop() }
    }
}

struct ConsumerRunner: Service {
    let consumer: ConsumerService
    func run() async throws {
        try await withGracefulShutdownHandler { try await consumer.run() } onGracefulShutdown: { consumer.stop() }
    }
}

struct HTTPRunner: Service {
    let server: HTTPServer
    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler { try await server.run() } onCancel: { Task { await server.stop(timeout: 1) } }
        } onGracefulShutdown: { Task { await server.stop(timeout: 1) } }
    }
}
