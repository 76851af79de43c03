import Logging
import PostgresClient

/// Notify capture (LISTEN plus SQL reads of the slot). See issue #5; wired in RelayService.
final class NotifyCapture: @unchecked Sendable {
    init(configuration: RelayConfiguration, publisher: Publisher, logger: Logger, metrics: RelayMetrics,
         health: RelayHealth, stopRequested: @escaping @Sendable () -> Bool) {}
    func wake() {}
    func runSession() throws {
        throw RelayError(.invalidConfiguration, "notify capture is not built yet", halting: true)
    }
}
