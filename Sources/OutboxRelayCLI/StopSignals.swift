import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// SIGTERM and SIGINT for `run` and `consume`, from the moment their settings are read.
///
/// ServiceLifecycle traps the signals only once the service group runs, after the start-up
/// checks; a supervisor's SIGTERM during those checks (up to 10 s each while a server does
/// not answer) killed the process with the default action, exit 143, although a stop that
/// leaves nothing unconfirmed is documented as 0. Here one trap covers the whole life:
/// before the group runs nothing has been read or published, so the process says so and
/// exits 0 at once; from then on the signal is the group's graceful shutdown (drain,
/// confirm, exit 0 or 75), as before.
final class StopSignals: Sendable {
    private let group = Mutex<ServiceGroup?>(nil)
    private let logger: Logger

    private init(logger: Logger) { self.logger = logger }

    /// Returns once the traps are installed, so a signal right after it is not lost.
    static func trap(logger: Logger) async -> StopSignals {
        let stop = StopSignals(logger: logger)
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        Task { for await signal in signals { await stop.received(signal) } }
        return stop
    }

    /// Runs `group`, which must not trap the signals itself (`gracefulShutdownSignals: []`):
    /// from here every signal asks it to shut down gracefully. (A request that reaches the
    /// group before its `run()` starts is kept and delivered once it does.)
    func run(_ group: ServiceGroup) async throws {
        self.group.withLock { $0 = group }
        try await group.run()
    }

    private func received(_ signal: UnixSignal) async {
        guard let group = group.withLock({ $0 }) else {
            logger.notice("stopped during the start-up checks: nothing was read or published", metadata: ["signal": "\(signal)"])
            // `_exit`, as for the stop watchdog: librdkafka's and libpq's threads of a check
            // in progress may still run, and atexit work must not race them.
            _exit(ExitStatus.success.rawValue)
        }
        await group.triggerGracefulShutdown()
    }
}
