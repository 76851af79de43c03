import KafkaClient

/// The consumer's core, pure: the batch in hand and the batch in flight, the offsets owed a
/// synchronous commit, retries and the stall they report, by cause, and what a batch's
/// outcomes mean. `ConsumerService` feeds it events under one lock and carries out the
/// actions it returns after releasing the lock, so every rule here is tested without
/// servers (`DeliveryStateMachine` is the relay's twin).
///
/// Invariants it keeps:
/// - one batch in flight at a time, applied in poll order: a batch's offsets are committed
///   only after its transaction committed, so a crash loses nothing and order per key holds;
/// - offsets committed asynchronously are owed a synchronous commit before partitions go
///   (revoke) or the consumer closes, so the next owner starts after the last applied batch;
/// - one failure is routine: only `stallAfterAttempts` in a row report a stall, and each
///   cause (the database, the dead-letter topic) is cleared only by its own success, so a
///   batch applied meanwhile cannot hide a dead-letter topic that refuses;
/// - a stop bounds the retries: once stopping, a batch that keeps failing is given up (its
///   offsets stay uncommitted and it is delivered again), never retried forever.
struct ConsumerStateMachine: Sendable {
    struct Policy: Sendable, Equatable {
        var batchSize: Int
        var retryBackoffMaximum: Duration
        var missingRowWindow: Duration

        init(batchSize: Int, retryBackoffMaximum: Duration, missingRowWindow: Duration) {
            self.batchSize = batchSize
            self.retryBackoffMaximum = retryBackoffMaximum
            self.missingRowWindow = missingRowWindow
        }

        init(_ configuration: ConsumerConfiguration) {
            self.init(batchSize: configuration.batchSize, retryBackoffMaximum: configuration.retryBackoffMaximum,
                      missingRowWindow: configuration.missingRowWindow)
        }

        /// A message can arrive before its row is visible: the walsender sends a commit as
        /// soon as its WAL is flushed, a moment before the committing backend makes it
        /// visible to other sessions, and under load the relay, the broker and this consumer
        /// can all act inside that moment. So a missing row rolls the batch back and retries
        /// it (`visibilityRetryDelays`) before it counts as poison, but only while the row
        /// may still appear: its message is younger than `missingRowWindow` (or carries no
        /// timestamp, so its age is unknown). An older message's row has had time to appear.
        func rowMayStillAppear(producedAtMilliseconds produced: Int64?, nowMilliseconds now: Int64) -> Bool {
            guard let produced else { return true }
            return .milliseconds(now - produced) < missingRowWindow
        }
    }

    enum StallCause: Sendable, Hashable { case database, deadLetter }

    /// Failures in a row before the consumer reports itself stalled: one retried deadlock or
    /// broker hiccup is routine and must not flap readiness (~0.4–0.6 s of retries).
    static let stallAfterAttempts = 3
    /// Once stopping, failures in a row after which a batch is given up, not retried.
    static let attemptsWhileStopping = 3
    /// Waits before a missing outbox row counts as poison: 20, 40, … 640 ms, ~1.3 s in all.
    static let visibilityRetryDelays: [Duration] = [20, 40, 80, 160, 320, 640].map { .milliseconds($0) }

    let policy: Policy
    /// Polled, not yet handed to the database thread.
    private(set) var inHand: [KafkaMessage] = []
    /// The batch the database thread is applying, if any.
    private(set) var inFlight: [KafkaMessage]?
    /// Offsets committed asynchronously since the last synchronous commit.
    private(set) var commitsOwed: [TopicPartition: Int64] = [:]
    private(set) var isStopping = false
    /// A simulated crash (tests) ended the run: nothing more is applied or committed.
    private(set) var crashed = false
    private var stall: [StallCause: String] = [:]
    private var failuresInARow: [StallCause: Int] = [:]
    private(set) var totals = Totals()
    /// Batches rolled back and retried because an outbox row was not visible yet.
    private(set) var visibilityRetries = 0

    struct Totals: Sendable, Equatable {
        var applied = 0, duplicates = 0, deadLettered = 0
    }

    init(policy: Policy) { self.policy = policy }

    /// Why the consumer is not getting on, or nil. A dead-letter stall is named first.
    var stalledReason: String? { stall[.deadLetter] ?? stall[.database] }

    // MARK: polling

    /// While the database thread works, poll briefly, so that when no more messages come its
    /// batch is still settled (offsets, metrics) within milliseconds.
    var pollTimeout: Duration { inFlight == nil ? .milliseconds(100) : .milliseconds(5) }

    enum ReceiveAction: Sendable, Equatable {
        /// The batch has room: poll on (until `batchWait` passes).
        case pollMore
        case batchFull
    }

    mutating func received(_ message: KafkaMessage) -> ReceiveAction {
        inHand.append(message)
        return inHand.count < policy.batchSize ? .pollMore : .batchFull
    }

    // MARK: the database thread's batch

    /// Hands the batch in hand to the database thread; nil when there is none. Only once the
    /// batch before it is settled.
    mutating func startApply() -> [KafkaMessage]? {
        precondition(inFlight == nil, "one batch in flight at a time")
        guard !inHand.isEmpty else { return nil }
        let batch = inHand
        inFlight = batch
        inHand.removeAll(keepingCapacity: true)
        return batch
    }

    /// What to do with a batch the database committed: dead-letter its poison messages,
    /// then commit `offsets`, then `settled(_:)`.
    struct Settlement: Sendable, Equatable {
        var poison: [Poison] = []
        /// The next offset to read, per partition.
        var offsets: [TopicPartition: Int64] = [:]
        /// Types of the effects applied, one entry per effect.
        var appliedTypes: [String] = []
        var duplicates = 0
        var size = 0
    }

    struct Poison: Sendable, Equatable {
        var message: KafkaMessage
        var reason: String
        var detail: String

        static func == (a: Poison, b: Poison) -> Bool {
            a.message.topic == b.message.topic && a.message.partition == b.message.partition && a.message.offset == b.message.offset
                && a.reason == b.reason && a.detail == b.detail
        }
    }

    /// The database thread committed the batch in flight with these outcomes (aligned).
    mutating func applied(_ outcomes: [ApplyOutcome]) -> Settlement {
        guard let batch = inFlight else { preconditionFailure("no batch in flight") }
        inFlight = nil
        var settlement = Settlement(size: batch.count)
        for (message, outcome) in zip(batch, outcomes) {
            switch outcome {
            case .applied(let type): settlement.appliedTypes.append(type)
            case .duplicate: settlement.duplicates += 1
            case .poison(let reason, let detail): settlement.poison.append(Poison(message: message, reason: reason, detail: detail))
            }
        }
        for message in batch {
            let partition = TopicPartition(topic: message.topic, partition: message.partition)
            settlement.offsets[partition] = max(settlement.offsets[partition] ?? 0, message.offset + 1)
        }
        return settlement
    }

    /// The batch in flight failed for good (retrying could not fix it, or a simulated crash).
    mutating func applyFailed(crashed: Bool) {
        inFlight = nil
        if crashed { self.crashed = true }
    }

    /// A batch's dead letters are acknowledged and its offsets committed (or the commit
    /// failed, which only means a counted redelivery). The seam for work that follows a
    /// committed batch.
    mutating func settled(_ settlement: Settlement) {
        totals.applied += settlement.appliedTypes.count
        totals.duplicates += settlement.duplicates
        totals.deadLettered += settlement.poison.count
    }

    // MARK: commits

    mutating func committedAsynchronously(_ offsets: [TopicPartition: Int64]) {
        commitsOwed.merge(offsets, uniquingKeysWith: max)
    }

    /// What a hand-over (revoke, close) must commit synchronously; nil when nothing is owed.
    var commitsToSettle: [TopicPartition: Int64]? { commitsOwed.isEmpty ? nil : commitsOwed }

    mutating func committedSynchronously() { commitsOwed.removeAll(keepingCapacity: true) }

    // MARK: retries and stall

    enum RetryAction: Sendable, Equatable {
        /// `stallBegins`: this failure is the one that reports the stall (the
        /// `stallAfterAttempts`th in a row). The shell logs it at error, once per stall; the
        /// failures before it are routine and the ones after it repeat it, so both are warnings.
        case retry(after: Duration, stallBegins: Bool = false)
        /// Stopping and still failing: give the batch up (its offsets stay uncommitted).
        case giveUp
    }

    /// Applying the batch failed (the connection is dropped; the whole batch is retried).
    mutating func databaseFailed(_ reason: String) -> RetryAction {
        let before = failuresInARow[.database, default: 0]
        if isStopping && before > Self.attemptsWhileStopping { return giveUp(.database) }
        let attempt = noteFailure(.database, "applying a batch failed \(before + 1) times in a row, retrying: \(reason)")
        let backoff = Duration.milliseconds(50 * (1 << min(attempt, 10)))
        return .retry(after: min(backoff, policy.retryBackoffMaximum), stallBegins: attempt == Self.stallAfterAttempts)
    }

    /// A batch applied. True when it ends a stall of the database (the shell logs the recovery).
    @discardableResult
    mutating func databaseSucceeded() -> Bool { noteSuccess(.database) }

    /// The dead-letter topic refused a send. The batch's offsets are held meanwhile.
    mutating func deadLetterFailed(_ reason: String, topic: String) -> RetryAction {
        let attempt = noteFailure(.deadLetter, "the dead-letter topic \(topic) refused \(failuresInARow[.deadLetter, default: 0] + 1) sends in a row; the batch's offsets are held: \(reason)")
        if isStopping && attempt > Self.attemptsWhileStopping { return giveUp(.deadLetter) }
        return .retry(after: min(.milliseconds(100 * attempt), .seconds(5)), stallBegins: attempt == Self.stallAfterAttempts)
    }

    /// The batch's dead letters were acknowledged. True when that ends a stall of the
    /// dead-letter topic.
    @discardableResult
    mutating func deadLettersSent() -> Bool { noteSuccess(.deadLetter) }

    private mutating func noteFailure(_ cause: StallCause, _ reason: String) -> Int {
        let attempt = failuresInARow[cause, default: 0] + 1
        failuresInARow[cause] = attempt
        if attempt >= Self.stallAfterAttempts { stall[cause] = reason }
        return attempt
    }

    private mutating func noteSuccess(_ cause: StallCause) -> Bool {
        failuresInARow[cause] = nil
        return stall.removeValue(forKey: cause) != nil
    }

    private mutating func giveUp(_ cause: StallCause) -> RetryAction {
        failuresInARow[cause] = nil
        return .giveUp
    }

    // MARK: rows not visible yet

    /// Whether attempt `attempt` (0-based) of a batch must accept missing rows as poison:
    /// after the last retry, a row that is still missing is not coming.
    static func acceptsMissingRows(attempt: Int) -> Bool { attempt >= visibilityRetryDelays.count }

    /// Attempt `attempt` met a row not visible yet: the wait before the next attempt.
    mutating func visibilityRetry(_ attempt: Int) -> Duration {
        precondition(!Self.acceptsMissingRows(attempt: attempt), "the last attempt accepts missing rows")
        visibilityRetries += 1
        return Self.visibilityRetryDelays[attempt]
    }

    // MARK: stop

    mutating func requestStop() { isStopping = true }
}
