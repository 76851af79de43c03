import Foundation
public import Logging
import PGOutput
import PostgresClient
public import RelayCore
public import ServiceLifecycle
import Synchronization
import Threading

/// The relay: runs the configured capture mode on a dedicated thread, reconnecting with
/// backoff after failures, waiting as a standby while another relay holds the slot, and
/// stopping gracefully on `stop()`, on graceful shutdown or on cancellation: it finishes
/// the transaction in hand, waits for deliveries and confirms, all within `drainTimeout`.
/// Halting errors end `run()` by throwing: they need an operator, and retrying could
/// skip rows.
///
/// `init` starts nothing; `run()` owns every task and thread it starts and ends them
/// before it returns.
public final class RelayService: Service, Sendable {
    public let configuration: RelayConfiguration
    public let health = RelayHealth()
    public let metrics: RelayMetrics
    private let logger: Logger
    /// One per outbox table when the sweeper runs alongside the capture; empty otherwise.
    public let sweepers: [Sweeper]

    private struct Running {
        /// When the wait for deliveries gives up: `drainTimeout` after the first stop
        /// request, less the teardown's reserve.
        var stopDeadline: ContinuousClock.Instant?
        var publisher: Publisher?
        var wake: (@Sendable () -> Void)?
        var stopSummary: StopSummary?
    }
    private let running = Mutex(Running())
    /// Armed by the first `stop()` when there is an `onStopOverrun`; `run()` finishes it.
    private let watchdog = StopWatchdog()

    /// How a stop ended. Exit codes: 0 when everything was confirmed; the CLI exits 75
    /// (EX_TEMPFAIL) when `unacknowledged > 0`.
    public struct StopSummary: Sendable, Equatable {
        /// Events published but not acknowledged when `drainTimeout` ran out: they were
        /// not confirmed, so the next start reads and publishes them again.
        public var unacknowledged: Int
    }

    /// Called once, from a timer thread, when `drainTimeout` has passed since the first stop
    /// request and `run()` has still not returned (its teardown is stuck, or the host is too
    /// loaded to finish it in time). The CLI exits there with status 75: what is confirmed
    /// is durable, and what is not is only published again by the next start, as after a
    /// crash. Nil: no watchdog (tests and embedders that wait for `run()` themselves).
    private let onStopOverrun: (@Sendable () -> Void)?

    public init(configuration: RelayConfiguration, sweeper policy: SweeperPolicy? = SweeperPolicy(), retention: Duration? = nil,
                logger: Logger, metrics: RelayMetrics? = nil, onStopOverrun: (@Sendable () -> Void)? = nil) throws(RelayError) {
        try configuration.validate()
        if let policy {
            do throws(PolicyError) { try policy.validate() } catch {
                throw RelayError(.invalidConfiguration, "\(error).", fix: "see `outbox-relay run --help` for the sweeper settings")
            }
        }
        self.configuration = configuration
        self.logger = logger
        self.onStopOverrun = onStopOverrun
        let metrics = metrics ?? RelayMetrics(slot: configuration.slotName, tables: configuration.tables)
        self.metrics = metrics
        self.sweepers = policy.map { policy in
            configuration.tables.map {
                Sweeper(policy: policy, retention: retention, table: $0, configuration: configuration, logger: logger, metrics: metrics)
            }
        } ?? []
    }

    /// Asks the relay to stop: finish the transaction in hand, wait for its deliveries,
    /// confirm the LSN and return from `run()`, all within `drainTimeout` of the first
    /// request. Safe from any thread (signal handlers included).
    public func stop() {
        let (publisher, deadline, wake, first) = running.withLock { running in
            let first = running.stopDeadline == nil
            if first { running.stopDeadline = .now + configuration.drainTimeout - configuration.stopTeardownReserve }
            return (running.publisher, running.stopDeadline!, running.wake, first)
        }
        publisher?.requestStop(deadline: deadline)
        wake?()
        if first, let onStopOverrun {
            let timeout = configuration.drainTimeout
            watchdog.arm(timeout: timeout) { [logger] in
                logger.critical("drain-timeout passed and the stop is still tearing down; exiting now (unconfirmed rows are published again at the next start)",
                                metadata: ["drain_timeout": "\(timeout)"])
                onStopOverrun()
            }
        }
    }

    public var isStopping: Bool { running.withLock { $0.stopDeadline != nil } }

    /// How the last stop ended; nil until `run()` returned after a stop.
    public var stopSummary: StopSummary? { running.withLock { $0.stopSummary } }

    /// Runs until stopped (returns) or a halting error (throws). The sweeper, when
    /// configured, runs alongside and shares the producer.
    public func run() async throws {
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler { try await runRelay() } onGracefulShutdown: { self.stop() }
        } onCancel: { self.stop() }
    }

    private func runRelay() async throws {
        defer { watchdog.finish() }
        if let shard = configuration.shard { metrics.shard(index: shard.index, count: shard.count, slot: configuration.slotName).record(1) }
        let publisher = try Publisher(configuration: configuration, logger: logger, metrics: metrics, health: health)
        let stopDeadline = running.withLock { running in
            running.publisher = publisher
            return running.stopDeadline
        }
        if let stopDeadline { publisher.requestStop(deadline: stopDeadline) }
        publisher.start()
        let outcome: Result<Void, any Error> = await withTaskGroup(of: Void.self) { group in
            for sweeper in sweepers {
                let health = self.health
                group.addTask { await publisher.runSweeper(sweeper, isActive: { health.current.state == .streaming }) }
            }
            group.addTask { await self.monitorSlotLag() }
            let outcome = await runBlocking { [self] in Result { try runCapture(publisher: publisher) } }
            group.cancelAll()
            // Closing the producer fails the sweeper's pending sends, so its task ends too.
            await publisher.close(deadline: running.withLock { $0.stopDeadline } ?? .now + .seconds(5))
            return outcome
        }
        running.withLock { $0.publisher = nil; $0.wake = nil }
        health.set(health.current.state == .halted ? .halted : .stopped)
        try outcome.get()
    }

    private func runCapture(publisher: Publisher) throws {
        switch configuration.capture {
        case .stream:
            let capture = StreamCapture(configuration: configuration, publisher: publisher, logger: logger, metrics: metrics, health: health)
            running.withLock { $0.wake = { capture.wake() } }
            try superviseSessions(publisher: publisher) { try capture.runSession() }
        case .notify:
            let capture = NotifyCapture(configuration: configuration, publisher: publisher, logger: logger, metrics: metrics, health: health)
            running.withLock { $0.wake = { capture.wake() } }
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

    /// A session that streamed at least this long resets the reconnect backoff.
    static let healthySessionLength: Duration = .seconds(30)

    /// Runs sessions until one returns because of a stop. Non-halting failures reconnect
    /// with backoff; a busy slot means waiting as a standby.
    private func superviseSessions(publisher: Publisher, _ session: () throws -> Void) throws {
        var attempt = 0
        // One outage, one error line: its first session end says what broke; the retries
        // until a session lasts `healthySessionLength` are warnings (a PostgreSQL restart
        // logged an error for every retry).
        var outageReported = false
        while !isStopping {
            let started = ContinuousClock.now
            do {
                try session()
                if isStopping { return finishStop(unacknowledged: 0) }
                (attempt, outageReported) = (0, false)
            } catch let error as StopDeadlinePassed {
                return finishStop(unacknowledged: error.unacknowledged)
            } catch let error as RelayError where error.isHalting {
                health.set(.halted, error.description)
                logger.critical("relay halted", metadata: ["code": "\(error.code)", "error": "\(error.message)", "fix": "\(error.fix ?? "")"])
                throw error
            } catch let error as RelayError where error.code == .slotInUse {
                if health.current.state != .standby {
                    logger.notice("standby: the slot is held by another relay; waiting to take over", metadata: ["slot": "\(configuration.slotName)"])
                }
                health.set(.standby, error.message)
                (attempt, outageReported) = (0, false)
                sleep(configuration.standbyPollInterval)
            } catch {
                if isStopping { return finishStop(unacknowledged: publisher.inFlightEvents) }
                if ContinuousClock.now - started >= Self.healthySessionLength { (attempt, outageReported) = (0, false) }
                let delay = configuration.reconnectBackoff.delay(attempt: attempt)
                attempt += 1
                metrics.reconnects.increment()
                health.set(.reconnecting, "\(error)")
                // A pause's restart is routine: the pause said the cause and the fix once.
                let routine = error is SessionRestart && publisher.restartIsPause
                let level: Logger.Level = routine ? .info : outageReported ? .warning : .error
                if !routine { outageReported = true }
                logger.log(level: level, routine ? "publishing paused; retrying from the slot" : "capture session ended; resuming from the slot",
                           metadata: ["error": "\(error)", "retry_in": "\(delay)", "attempt": "\(attempt)"])
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
        finishStop(unacknowledged: 0)
    }

    private func finishStop(unacknowledged: Int) {
        running.withLock { $0.stopSummary = StopSummary(unacknowledged: unacknowledged) }
        if unacknowledged > 0 {
            logger.warning("stopped at drain-timeout with events unacknowledged; they were not confirmed and are published again at the next start",
                           metadata: ["unacknowledged": "\(unacknowledged)", "drain_timeout": "\(configuration.drainTimeout)"])
        }
    }

    private func sleep(_ duration: Duration) {
        let deadline = ContinuousClock.now + duration
        while !isStopping, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}
