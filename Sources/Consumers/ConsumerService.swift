import Foundation
import KafkaClient
public import Logging
import PostgresClient
import Synchronization
import Schema
import Threading

/// The booking/payment consumer group member: polls a batch, applies it in one database
/// transaction (set-based; when the database refuses the batch's data, again with a
/// savepoint per message, so one bad message never takes the others down), sends poison
/// messages to the dead-letter topic, and only then commits the offsets.
///
/// Two threads, one batch each: the Kafka thread polls and parses the next batch while the
/// database thread applies the one before. Batches are applied strictly one after the
/// other, in poll order, and a batch's offsets are committed only after its transaction
/// committed, so the pipeline changes neither per-key order nor what a crash can lose.
/// Every libpq and librdkafka call here blocks. Rebalance callbacks run inside `poll` on
/// the Kafka thread: on revoke, the batch being applied and the batch in hand are both
/// applied and committed before the partitions go.
public final class ConsumerService: @unchecked Sendable {
    public let configuration: ConsumerConfiguration
    public let metrics: ConsumerMetrics
    private let logger: Logger
    private let stopFlag = Atomic<Bool>(false)
    /// Test hook: called after the database commit and before the offset commit. Throwing
    /// from it simulates a crash at the worst moment (the offsets are never committed).
    public var afterDatabaseCommit: (@Sendable () throws -> Void)?
    /// Test hook: called on the database thread as it starts applying a batch.
    public var beforeDatabaseApply: (@Sendable () -> Void)?
    /// Test hook: called on the Kafka thread when a batch of this many messages is parsed.
    public var afterPrepare: (@Sendable (Int) -> Void)?

    /// Used only by jobs on `databaseQueue`.
    private var connection: PGConnection?
    /// The database thread: a serial queue that runs one `ApplyJob` at a time.
    private let databaseQueue = DispatchQueue(label: "outbox-consumers.database")
    /// The batch the database thread is applying, if any.
    private var inFlight: ApplyJob?
    private var consumer: KafkaConsumer?
    private var dlqProducer: KafkaProducer?
    private var pending: [KafkaMessage] = []
    /// Offsets committed asynchronously since the last synchronous commit: committed again,
    /// synchronously, before partitions are given up or the consumer closes.
    private var asyncCommitted: [TopicPartition: Int64] = [:]
    private var crashed = false
    private let applier = EffectApplier()
    private let counters = Mutex<(applied: Int, duplicates: Int, deadLettered: Int)>((0, 0, 0))

    /// Called once, from a timer thread, when `drainTimeout` has passed since the first
    /// `stop()` and `run()` has not returned (a frozen database or broker holds the last
    /// batch or the group leave). The CLI exits there with status 75. Nil: no watchdog.
    private let onStopOverrun: (@Sendable () -> Void)?
    private let watchdog = StopWatchdog()
    /// Registers the group's topics for the relay's sweeper and records how far it has read.
    private let progress: ProgressRecorder

    public init(configuration: ConsumerConfiguration, logger: Logger, metrics: ConsumerMetrics = ConsumerMetrics(),
                onStopOverrun: (@Sendable () -> Void)? = nil) throws(ConsumerError) {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.onStopOverrun = onStopOverrun
        self.progress = ProgressRecorder(configuration: configuration, logger: logger)
    }

    /// Batches rolled back and retried because an outbox row was not visible yet.
    public var visibilityRetries: Int { visibilityRetryCount.load(ordering: .relaxed) }
    private let visibilityRetryCount = Atomic<Int>(0)

    /// Totals since start, for the demo's summary and tests.
    public var totals: (applied: Int, duplicates: Int, deadLettered: Int) { counters.withLock { $0 } }

    /// Why the consumer is not getting on, or nil: a batch whose database transaction or
    /// whose dead letters have failed `stallAfterAttempts` times in a row. The batch is
    /// retried and its offsets held, so nothing is lost, but every later batch waits: the
    /// CLI's /readyz answers 503 with this reason, and `outbox_consumer_ready` is 0.
    public var stalledReason: String? { stall.withLock { $0[.deadLetter] ?? $0[.database] } }
    /// By cause: the database thread and the Kafka thread (dead letters) each clear only
    /// their own, so a batch applied meanwhile cannot hide a dead-letter topic that refuses.
    private let stall = Mutex<[StallCause: String]>([:])
    private enum StallCause { case database, deadLetter }
    /// Failures in a row before the consumer reports itself stalled: one retried deadlock or
    /// broker hiccup is routine and must not flap readiness (~0.4–0.6 s of retries).
    static let stallAfterAttempts = 3

    private func noteRetry(_ cause: StallCause, attempt: Int, _ reason: @autoclosure () -> String) {
        guard attempt >= Self.stallAfterAttempts else { return }
        let text = reason()
        stall.withLock { $0[cause] = text }
    }

    /// One line for /readyz: a database error by its message and SQLSTATE, without the
    /// statement that PGError's description carries over many lines (the log has it whole).
    private static func briefly(_ error: any Error) -> String {
        if let error = error as? PGError { return "\(error.message)\(error.sqlState.map { " [SQLSTATE \($0)]" } ?? "")" }
        return "\(error)".split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(type(of: error))"
    }

    private func noteProgress(_ cause: StallCause) {
        stall.withLock { $0[cause] = nil }
    }

    /// Asks the consumer to apply and commit the batch in hand, leave the group and return
    /// from `run()`, within `drainTimeout` (the watchdog). Safe from any thread.
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        guard let onStopOverrun else { return }
        let timeout = configuration.drainTimeout
        watchdog.arm(timeout: timeout) { [logger] in
            logger.critical("drain-timeout passed and the consumer is still stopping; exiting now (a batch whose offsets were not committed is delivered again and deduplicated)",
                            metadata: ["drain_timeout": "\(timeout)"])
            onStopOverrun()
        }
    }

    /// Runs until `stop()`; throws only for errors retrying cannot fix (bad configuration).
    public func run() async throws {
        defer { watchdog.finish() }
        let outcome: Result<Void, any Error> = await withCheckedContinuation { continuation in
            BlockingThread { [self] in continuation.resume(returning: Result { try runBlocking() }) }.start()
        }
        try outcome.get()
    }

    private func runBlocking() throws {
        let dlq = try KafkaProducer(configuration: configuration.kafka, logger: logger, onDelivery: { _ in })
        dlqProducer = dlq
        let consumer = try KafkaConsumer(
            configuration: configuration.kafka, groupID: configuration.groupID, logger: logger,
            onAssign: { [logger, progress] partitions in
                logger.info("partitions assigned", metadata: ["partitions": "\(partitions.count)"])
                progress.assigned(partitions)
            },
            onRevoke: { [self] partitions in
                logger.info("partitions revoked; committing the batch in hand", metadata: ["partitions": "\(partitions.count)"])
                if !crashed { try? flushPending() }
                if !crashed { settleCommits() }  // flushPending may have crashed (test hook)
                progress.revoked(partitions)
            })
        self.consumer = consumer
        try consumer.subscribe(configuration.topics)
        logger.info("consuming", metadata: ["group": "\(configuration.groupID)", "topics": "\(configuration.topics.joined(separator: ","))"])
        var lastLag = ContinuousClock.now
        progress.start()
        defer {
            if !crashed { try? flushPending() }
            if !crashed { settleCommits() }
            // A crashed job's result is dropped unread; its offsets were never committed.
            if let job = inFlight { job.done.wait(); inFlight = nil }
            consumer.close()
            dlq.close()
            databaseQueue.sync { connection = nil }
            progress.stop()
        }
        while !stopFlag.load(ordering: .acquiring) {
            // While the database thread works, poll briefly, so that when no more messages
            // come its batch is still settled (offsets, metrics) within milliseconds.
            let pollStart = ProgressRecorder.wallNow()
            let polled = try consumer.poll(timeout: inFlight == nil ? .milliseconds(100) : .milliseconds(5))
            if let message = polled {
                pending.append(message)
                let deadline = ContinuousClock.now + configuration.batchWait
                while pending.count < configuration.batchSize, ContinuousClock.now < deadline,
                      let more = try consumer.poll(timeout: .zero) ?? consumer.poll(timeout: .milliseconds(1)) {
                    pending.append(more)
                }
            }
            // Parse and render this batch while the database thread still applies the one
            // before, then finish that one, hand it this one and go back to polling.
            let prepared = pending.isEmpty ? nil : prepare(pending)
            try settleInFlight()
            if polled == nil && pending.isEmpty { progress.idle(pollStart: pollStart) }
            if let prepared {
                startApply(pending, prepared: prepared)
                pending.removeAll(keepingCapacity: true)
            }
            if ContinuousClock.now - lastLag > .seconds(5) {
                lastLag = ContinuousClock.now
                if let lag = consumer.lag() { metrics.lag.record(lag) }
            }
        }
    }

    /// Applies and commits everything polled so far: the batch the database thread holds,
    /// then the batch in hand. Returns when both are committed.
    private func flushPending() throws {
        try settleInFlight()
        guard !pending.isEmpty else { return }
        startApply(pending, prepared: prepare(pending))
        pending.removeAll(keepingCapacity: true)
        try settleInFlight()
    }

    /// Parses `batch` and renders its statement's parameters: CPU work for the Kafka thread.
    private func prepare(_ batch: [KafkaMessage]) -> PreparedBatch {
        let prepared = applier.prepare(batch)
        afterPrepare?(batch.count)
        return prepared
    }

    /// Hands `batch`, parsed and rendered on the Kafka thread, to the database thread.
    private func startApply(_ batch: [KafkaMessage], prepared: PreparedBatch) {
        precondition(inFlight == nil, "one batch in flight at a time")
        let job = ApplyJob(batch: batch, prepared: prepared)
        inFlight = job
        databaseQueue.async { [self] in
            beforeDatabaseApply?()
            job.result = Result { try applyWithRetries(job) }
            job.done.signal()
        }
    }

    /// Waits for the database thread's batch, then dead-letters its poison messages and
    /// commits its offsets. Rethrows what retrying could not fix (and a simulated crash).
    private func settleInFlight() throws {
        guard let job = inFlight, let consumer else { return }
        job.done.wait()
        inFlight = nil
        switch job.result! {
        case .success(let outcomes):
            try finish(job.batch, outcomes: outcomes, consumer: consumer)
        case .failure(let error):
            if error is SimulatedCrash { crashed = true }
            throw error
        }
    }

    /// On the database thread: applies one batch, retrying the database side until it works.
    private func applyWithRetries(_ job: ApplyJob) throws -> [ApplyOutcome] {
        var attempt = 0
        while true {
            do {
                let outcomes = try applyBatch(job.batch, prepared: job.prepared)
                noteProgress(.database)
                return outcomes
            } catch let error as SimulatedCrash {
                throw error
            } catch {
                if stopFlag.load(ordering: .acquiring) && attempt > 3 { throw error }
                connection = nil
                attempt += 1
                noteRetry(.database, attempt: attempt, "applying a batch failed \(attempt) times in a row, retrying: \(Self.briefly(error))")
                metrics.transactionRetries.increment()
                let delay = min(Double(1 << min(attempt, 10)) * 0.05, Double(configuration.retryBackoffMaximum.components.seconds))
                logger.error("applying a batch failed; retrying it", metadata: ["error": "\(error)", "retry_in": "\(Duration.milliseconds(Int64(delay * 1_000)))"])
                Thread.sleep(forTimeInterval: delay)
            }
        }
    }

    /// Waits before a missing outbox row counts as poison: 20, 40, … 640 ms, ~1.3 s in all.
    static let visibilityRetryDelays: [Double] = [0.02, 0.04, 0.08, 0.16, 0.32, 0.64]

    /// Whether `message`'s outbox row can still become visible: its message is younger than
    /// `missingRowWindow` (or carries no timestamp, so its age is unknown).
    private func rowMayStillAppear(for message: KafkaMessage) -> Bool {
        guard let produced = message.timestampMilliseconds else { return true }
        let age = Duration.milliseconds(Int64(Date().timeIntervalSince1970 * 1_000) - produced)
        return age < configuration.missingRowWindow
    }

    private func applyBatch(_ batch: [KafkaMessage], prepared: PreparedBatch) throws -> [ApplyOutcome] {
        if connection == nil || connection?.isHealthy == false {
            connection = try PGConnection.connectBlocking(configuration.databaseURL, applicationName: configuration.applicationName)
        }
        let conn = connection!
        // A message can arrive before its row is visible: the walsender sends a commit as
        // soon as its WAL is flushed, a moment before the committing backend makes it
        // visible to other sessions, and under load the relay, the broker and this consumer
        // can all act inside that moment. So a missing row rolls the batch back and retries
        // it a few times before it counts as poison.
        var outcomes: [ApplyOutcome] = []
        for (attempt, delay) in (Self.visibilityRetryDelays + [nil]).enumerated() {
            do {
                outcomes = try applyInTransaction(batch, prepared: prepared, on: conn, acceptMissingRows: delay == nil)
                break
            } catch is RowsNotYetVisible {
                if attempt == 0 { logger.info("an outbox row is not visible yet; retrying the batch", metadata: ["messages": "\(batch.count)"]) }
                metrics.transactionRetries.increment()
                visibilityRetryCount.add(1, ordering: .relaxed)
                Thread.sleep(forTimeInterval: delay ?? 0)
            }
        }
        try afterDatabaseCommit?()
        return outcomes
    }

    /// One attempt: set-based, or, when the database refuses the batch's data, one message
    /// per savepoint. Throws `RowsNotYetVisible` (rolling back) unless `acceptMissingRows`.
    private func applyInTransaction(_ batch: [KafkaMessage], prepared: PreparedBatch, on conn: PGConnection, acceptMissingRows: Bool) throws -> [ApplyOutcome] {
        func check(_ outcomes: [ApplyOutcome]) throws -> [ApplyOutcome] {
            if !acceptMissingRows, zip(batch, outcomes).contains(where: { $1.isMissingRow && rowMayStillAppear(for: $0) }) {
                throw RowsNotYetVisible()
            }
            return outcomes
        }
        do {
            return try conn.transactionBlocking { conn in try check(applier.applyBatch(prepared, on: conn)) }
        } catch let error as PGError where DatabaseFailure(sqlState: error.sqlState) == .rejectedData {
            // The database refused some message's data (constraint, type, invalid JSON):
            // nothing of the batch was kept. Redo it one message per savepoint, so only the
            // message at fault is poisoned and the others are applied. Any other refusal
            // reaches `applyWithRetries`: the whole batch is retried, never dead-lettered.
            logger.notice("batch refused by the database; applying it message by message",
                          metadata: ["error": "\(error.sqlState ?? "") \(error.message)", "messages": "\(batch.count)"])
            return try applyOneByOne(batch, on: conn, check: check)
        }
    }

    private func applyOneByOne(_ batch: [KafkaMessage], on conn: PGConnection,
                               check: ([ApplyOutcome]) throws -> [ApplyOutcome]) throws -> [ApplyOutcome] {
        try conn.transactionBlocking { conn in
            var outcomes: [ApplyOutcome] = []
            for message in batch {
                try conn.queryBlocking("SAVEPOINT message")
                do {
                    let outcome = try applier.apply(message, on: conn)
                    if case .poison = outcome { try conn.queryBlocking("ROLLBACK TO SAVEPOINT message") }
                    outcomes.append(outcome)
                } catch let error as PGError where DatabaseFailure(sqlState: error.sqlState) == .rejectedData {
                    try conn.queryBlocking("ROLLBACK TO SAVEPOINT message")
                    outcomes.append(.poison(reason: "rejected_by_database", detail: "\(error.sqlState ?? "") \(error.message)"))
                }
                try conn.queryBlocking("RELEASE SAVEPOINT message")
            }
            return try check(outcomes)
        }
    }

    private func finish(_ batch: [KafkaMessage], outcomes: [ApplyOutcome], consumer: KafkaConsumer) throws {
        var applied = 0, duplicates = 0
        var poison: [(message: KafkaMessage, reason: String, detail: String)] = []
        for (message, outcome) in zip(batch, outcomes) {
            switch outcome {
            case .applied(let type):
                applied += 1
                metrics.applied(type).increment()
            case .duplicate:
                duplicates += 1
                metrics.duplicates.increment()
            case .poison(let reason, let detail):
                poison.append((message, reason, detail))
            }
        }
        let dead = poison.count
        try deadLetter(poison)
        progress.applied(batch)
        var offsets: [TopicPartition: Int64] = [:]
        for message in batch {
            let tp = TopicPartition(topic: message.topic, partition: message.partition)
            offsets[tp] = max(offsets[tp] ?? 0, message.offset + 1)
        }
        // Asynchronous: waiting for the coordinator's answer cost a broker round trip per
        // batch, about a third of the batch's time. A commit lost this way (the consumer
        // dies first, the coordinator moves) is a redelivery, which the status guard turns
        // into counted duplicates; `settleCommits` makes it synchronous at every handover.
        do {
            try consumer.commit(offsets, asynchronously: true)
            asyncCommitted.merge(offsets, uniquingKeysWith: max)
        } catch {
            // The effects are committed and guarded: a redelivery is a counted no-op.
            logger.warning("offset commit failed; the batch may be redelivered and will be deduplicated", metadata: ["error": "\(error)"])
        }
        metrics.batchSize.record(batch.count)
        counters.withLock { $0.applied += applied; $0.duplicates += duplicates; $0.deadLettered += dead }
    }

    /// Commits, synchronously, what was committed asynchronously since the last time, so
    /// the next owner of the partitions starts after the last applied batch.
    private func settleCommits() {
        guard !asyncCommitted.isEmpty, let consumer else { return }
        do {
            try consumer.commit(asyncCommitted)
            asyncCommitted.removeAll(keepingCapacity: true)
        } catch {
            logger.warning("offset commit failed; the last batches may be redelivered and will be deduplicated", metadata: ["error": "\(error)"])
        }
    }

    /// Sends a batch's poison messages to the dead-letter topic, in batch order, and returns
    /// once every one is acknowledged (the batch's offsets are committed only after). All
    /// are produced before waiting, so a batch costs one broker round trip, not one per
    /// message; a failed send is retried, keeping the order, until it succeeds or stops.
    private func deadLetter(_ poison: [(message: KafkaMessage, reason: String, detail: String)]) throws {
        var pending = poison.map { item in
            var headers = RecordContract.deadLetterHeaders(from: item.message.headers, reason: item.reason, error: item.detail,
                                                           originalTopic: item.message.topic)
            headers.append((RecordContract.DeadLetterHeader.originalPartition, Array(String(item.message.partition).utf8)))
            headers.append((RecordContract.DeadLetterHeader.originalOffset, Array(String(item.message.offset).utf8)))
            return (record: OutgoingRecord(topic: configuration.deadLetterTopic, key: item.message.key, value: item.message.value, headers: headers),
                    reason: item.reason)
        }
        var attempt = 0
        while !pending.isEmpty {
            let results = dlqProducer!.sendInOrderBlocking(pending.map(\.record))
            // Resend from the first failure on, so the dead-letter topic keeps batch order
            // (a later message that did arrive is then dead-lettered twice: at least once).
            let firstFailure = results.firstIndex { if case .failure = $0 { true } else { false } } ?? results.count
            for item in pending[..<firstFailure] { metrics.deadLettered(item.reason).increment() }
            guard firstFailure < results.count, case .failure(let error) = results[firstFailure] else {
                // One line per batch, once all are acknowledged (the headers carry the rest).
                let summary = PoisonSummary(poison.map { ($0.message.topic, $0.message.partition, $0.message.offset, $0.reason) })
                logger.warning("poison messages dead-lettered", metadata: [
                    "messages": "\(poison.count)", "reason": "\(summary.reasons)", "topics": "\(summary.topics)"])
                noteProgress(.deadLetter)
                return
            }
            pending.removeFirst(firstFailure)
            attempt += 1
            noteRetry(.deadLetter, attempt: attempt, "the dead-letter topic \(configuration.deadLetterTopic) refused \(attempt) sends in a row; the batch's offsets are held: \(Self.briefly(error))")
            logger.error("dead-letter send failed; retrying (offsets are held)", metadata: ["error": "\(error)", "messages": "\(pending.count)"])
            if stopFlag.load(ordering: .acquiring) && attempt > 3 { throw error }
            Thread.sleep(forTimeInterval: min(0.1 * Double(attempt), 5))
        }
    }
}

/// One batch handed to the database thread; `done` is signalled once `result` is set.
private final class ApplyJob: @unchecked Sendable {
    let batch: [KafkaMessage]
    let prepared: PreparedBatch
    let done = DispatchSemaphore(value: 0)
    var result: Result<[ApplyOutcome], any Error>?

    init(batch: [KafkaMessage], prepared: PreparedBatch) {
        self.batch = batch
        self.prepared = prepared
    }
}

/// A batch referred to an outbox row this transaction could not see (yet); rolled back.
struct RowsNotYetVisible: Error {}

/// Thrown by `afterDatabaseCommit` hooks in tests to simulate a crash.
public struct SimulatedCrash: Error {
    public init() {}
}
