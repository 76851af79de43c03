import Foundation
public import Logging
import PGOutput
import PostgresClient
public import RelayCore
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

    /// Present when the sweeper runs alongside the capture.
    public let sweeper: Sweeper?

    public init(configuration: RelayConfiguration, sweeper policy: SweeperPolicy? = SweeperPolicy(), retention: Duration? = nil,
                logger: Logger, metrics: RelayMetrics = RelayMetrics()) throws(RelayError) {
        try configuration.validate()
        if let policy {
            do throws(PolicyError) { try policy.validate() } catch {
                throw RelayError(.invalidConfiguration, "\(error).", fix: "see `outbox-relay run --help` for the sweeper settings")
            }
        }
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.sweeper = policy.map { Sweeper(policy: $0, retention: retention, configuration: configuration, logger: logger, metrics: metrics) }
    }

    /// Asks the relay to finish the transaction in hand, wait for its deliveries, confirm
    /// the LSN and return from `run()`. Safe from any thread (signal handlers included).
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        wakeHook.withLock { $0 }?()
    }

    public var isStopping: Bool { stopFlag.load(ordering: .acquiring) }

    /// Runs until `stop()` (returns) or a halting error (throws). The sweeper, when
    /// configured, runs alongside and shares the producer.
    public func run() async throws {
        let publisher = try Publisher(configuration: configuration, logger: logger, metrics: metrics, health: health)
        let sweepTask = sweeper.map { sweeper in Task { await sweeper.run(publisher: publisher) } }
        let monitorTask = Task { await monitorSlotLag() }
        let outcome: Result<Void, any Error> = await withCheckedContinuation { continuation in
            BlockingThread { [self] in
                continuation.resume(returning: Result { try runCapture(publisher: publisher) })
            }.start()
        }
        sweepTask?.cancel()
        monitorTask.cancel()
        await sweepTask?.value
        await publisher.close()
        health.set(health.current.state == .halted ? .halted : .stopped)
        try outcome.get()
    }

    private func runCapture(publisher: Publisher) throws {
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

    /// Samples the slot's lag (bytes of WAL it still holds) for the metric, every 5 s.
    private func monitorSlotLag() async {
        var connection: PGConnection?
        while !Task.isCancelled && !isStopping {
            do {
                if connection == nil { connection = try await PGConnection.connect(configuration.databaseURL, applicationName: "\(configuration.applicationName)-monitor") }
                let rows = try await connection!.query("""
                    SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 AS lag FROM pg_replication_slots WHERE slot_name = $1
                    """, [.text(configuration.slotName)]).rows
                if let lag = try rows.first?.optionalInt64("lag") { metrics.slotLagBytes.record(lag) }
            } catch {
                connection = nil
            }
            try? await Task.sleep(for: .seconds(5))
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
