import Foundation
import KafkaClient
public import Logging
import PostgresClient
import Synchronization
import Threading

/// The booking/payment consumer group member: polls a batch, applies it in one database
/// transaction (set-based; when the database refuses the batch's data, again with a
/// savepoint per message, so one bad message never takes the others down), sends poison
/// messages to the dead-letter topic, and only then commits the offsets.
///
/// Two threads, one batch each: the Kafka thread (`ConsumerLoop`) polls and parses the next
/// batch while the database thread (`DatabaseWorker`) applies the one before. Every
/// decision (batches, retries, stall, commits owed) is `ConsumerStateMachine`'s, kept here
/// behind one lock; the two threads only carry its actions out. Every libpq and librdkafka
/// call here blocks, so none runs on Swift's cooperative pool.
public final class ConsumerService: Sendable {
    public let configuration: ConsumerConfiguration
    public let metrics: ConsumerMetrics
    let logger: Logger
    let hooks: ConsumerHooks
    /// The core. Locked only to feed it an event; actions run after the lock is released.
    let core: Mutex<ConsumerStateMachine>

    /// Called once, from a timer thread, when `drainTimeout` has passed since the first
    /// `stop()` and `run()` has not returned (a frozen database or broker holds the last
    /// batch or the group leave). The CLI exits there with status 75. Nil: no watchdog.
    private let onStopOverrun: (@Sendable () -> Void)?
    private let watchdog = StopWatchdog()
    /// Registers the group's topics for the relay's sweeper and records how far it has read.
    let progress: ProgressRecorder
    /// Partitions the group gave this member at its last assignment.
    let assigned = Atomic<Int>(0)

    public convenience init(configuration: ConsumerConfiguration, logger: Logger, metrics: ConsumerMetrics = ConsumerMetrics(),
                            onStopOverrun: (@Sendable () -> Void)? = nil) throws(ConsumerError) {
        try self.init(configuration: configuration, logger: logger, metrics: metrics, onStopOverrun: onStopOverrun, hooks: ConsumerHooks())
    }

    init(configuration: ConsumerConfiguration, logger: Logger, metrics: ConsumerMetrics = ConsumerMetrics(),
         onStopOverrun: (@Sendable () -> Void)? = nil, hooks: ConsumerHooks) throws(ConsumerError) {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.onStopOverrun = onStopOverrun
        self.hooks = hooks
        core = Mutex(ConsumerStateMachine(policy: .init(configuration)))
        self.progress = ProgressRecorder(configuration: configuration, logger: logger)
    }

    /// Partitions this member holds (0 while it stands by: the group has more members than
    /// the topics have partitions).
    public var assignedPartitions: Int { assigned.load(ordering: .relaxed) }

    /// Batches rolled back and retried because an outbox row was not visible yet.
    public var visibilityRetries: Int { core.withLock { $0.visibilityRetries } }

    /// Totals since start, for the demo's summary and tests.
    public var totals: (applied: Int, duplicates: Int, deadLettered: Int) {
        let totals = core.withLock { $0.totals }
        return (totals.applied, totals.duplicates, totals.deadLettered)
    }

    /// Why the consumer is not getting on, or nil: a batch whose database transaction or
    /// whose dead letters have failed `ConsumerStateMachine.stallAfterAttempts` times in a
    /// row. The batch is retried and its offsets held, so nothing is lost, but every later
    /// batch waits: the CLI's /readyz answers 503 with this reason, and
    /// `outbox_consumer_ready` is 0.
    public var stalledReason: String? { core.withLock { $0.stalledReason } }

    /// Asks the consumer to apply and commit the batch in hand, leave the group and return
    /// from `run()`, within `drainTimeout` (the watchdog). Safe from any thread.
    public func stop() {
        core.withLock { $0.requestStop() }
        guard let onStopOverrun else { return }
        let timeout = configuration.drainTimeout
        watchdog.arm(timeout: timeout) { [logger] in
            logger.critical("drain-timeout passed and the consumer is still stopping; exiting now (a batch whose offsets were not committed is delivered again and deduplicated)",
                            metadata: ["drain_timeout": "\(timeout)"])
            onStopOverrun()
        }
    }

    var isStopping: Bool { core.withLock { $0.isStopping } }

    /// Runs until `stop()`; throws only for errors retrying cannot fix (bad configuration).
    public func run() async throws {
        defer { watchdog.finish() }
        let dlq = try KafkaProducer(configuration: configuration.kafka, logger: logger, onDelivery: { _ in })
        // Ask for the topics before joining the group. Where the broker creates topics on
        // first use (as it does for the relay's first message), they now exist, and the
        // member joins once with all of them. Subscribed to a topic that does not exist
        // yet, it joined without it, saw it only at the next metadata refresh, and paid a
        // second rebalance for it: seconds of `applied 0` at every first start.
        await dlq.requestTopicMetadata(configuration.topics)
        let outcome: Result<Void, any Error> = await withCheckedContinuation { continuation in
            BlockingThread { [self] in continuation.resume(returning: Result { try ConsumerLoop(service: self, dlq: dlq).run() }) }.start()
        }
        try outcome.get()
    }

    /// One line for /readyz: a database error by its message and SQLSTATE (and the fix, when
    /// the SQLSTATE says it), without the statement that PGError's description carries over
    /// many lines (the log has it whole).
    static func briefly(_ error: any Error) -> String {
        if let error = error as? PGError, error.code == .connectionFailed { return ConnectFailureAdvice.explain(error.message) }
        if let error = error as? PGError {
            return "\(error.message)\(error.sqlState.map { " [SQLSTATE \($0)]" } ?? "")"
                + (DatabaseFailure.fix(sqlState: error.sqlState).map { " " + $0 } ?? "")
        }
        return "\(error)".split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(type(of: error))"
    }
}
