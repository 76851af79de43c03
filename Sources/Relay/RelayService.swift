import Foundation
public import Logging
import PGOutput
import PostgresClient
import RelayCore
import Synchronization

/// The relay: runs the configured capture mode on a dedicated thread, reconnecting with
/// backoff after failures, waiting as a standby while another relay holds the slot, and
/// stopping gracefully (drain, confirm) on `stop()`. Halting errors end `run()` by
/// throwing: they need an operator, and retrying could skip rows.
public final class RelayService: Sendable {
    public let configuration: RelayConfiguration
    public let health = RelayHealth()
    public let metrics: RelayMetrics
    private let logger: Logger
    private let stopFlag = Atomic<Bool>(false)
    private let wakeHook = Mutex<(@Sendable () -> Void)?>(nil)

    public init(configuration: RelayConfiguration, logger: Logger, metrics: RelayMetrics = RelayMetrics()) throws(RelayError) {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
    }

    /// Asks the relay to finish the transaction in hand, wait for its deliveries, confirm
    /// the LSN and return from `run()`. Safe from any thread (signal handlers included).
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        wakeHook.withLock { $0 }?()
    }

    public var isStopping: Bool { stopFlag.load(ordering: .acquiring) }

    /// Runs until `stop()` (returns) or a halting error (throws).
    public func run() async throws {
        let outcome: Result<Void, any Error> = await withCheckedContinuation { continuation in
            BlockingThread { [self] in
                continuation.resume(returning: Result { try runBlocking() })
            }.start()
        }
        try outcome.get()
    }

    private func runBlocking() throws {
        let publisher = try Publisher(configuration: configuration, logger: logger, metrics: metrics, health: health)
        defer {
            publisher.close()
            health.set(health.current.state == .halted ? .halted : .stopped)
        }
        switch configuration.capture {
        case .stream:
            let capture = StreamCapture(configuration: configuration, publisher: publisher, logger: logger, metrics: metrics,
                                        health: health, stopRequested: { [self] in isStopping })
            wakeHook.withLock { $0 = { capture.current.withLock { $0 }?.wake() } }
            try superviseSessions(publisher: publisher) { try capture.runSession() }
        case .notify:
            let capture = NotifyCapture(configuration: configuration, publisher: publisher, logger: logger, metrics: metrics,
                                        health: health, stopRequested: { [self] in isStopping })
            wakeHook.withLock { $0 = { capture.wake() } }
            try superviseSessions(publisher: publisher) { try capture.runSession() }
        }
    }

    /// Runs sessions until one returns because of `stop()`. Non-halting failures reconnect
    /// with backoff; a busy slot means waiting as a standby.
    private func superviseSessions(publisher: Publisher, _ session: () throws -> Void) throws {
        var attempt = 0
        while !isStopping {
            do {
                try session()
                if isStopping { return }
                attempt = 0
            } catch let error as RelayError where error.isHalting {
                health.set(.halted, error.description)
                logger.critical("relay halted", metadata: ["code": "\(error.code)", "error": "\(error.message)", "fix": "\(error.fix ?? "")"])
                throw error
            } catch let error as RelayError where error.code == .slotInUse {
                if health.current.state != .standby {
                    logger.notice("standby: the slot is held by another relay; waiting to take over", metadata: ["slot": "\(configuration.slotName)"])
                }
                health.set(.standby, error.message)
                attempt = 0
                sleep(configuration.standbyPollInterval)
                continue
            } catch {
                if isStopping { return }
                let delay = configuration.reconnectBackoff.delay(attempt: attempt)
                attempt += 1
                metrics.reconnects.increment()
                health.set(.reconnecting, "\(error)")
                logger.error("capture session ended; resuming from the slot", metadata: ["error": "\(error)", "retry_in": "\(delay)", "attempt": "\(attempt)"])
                if error is SessionRestart || publisher.pendingRestart != nil {
                    do {
                        try publisher.recreateProducer()
                        metrics.producerRecreated.increment()
                    } catch {
                        logger.error("could not recreate the Kafka producer", metadata: ["error": "\(error)"])
                    }
                }
                sleep(delay)
            }
        }
    }

    private func sleep(_ duration: Duration) {
        let deadline = ContinuousClock.now + duration
        while !isStopping, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}
