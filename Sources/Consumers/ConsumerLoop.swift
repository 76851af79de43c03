import Foundation
import KafkaClient
import Logging
import Schema

/// The Kafka thread's side of one `ConsumerService.run()`: polls batches, parses the next
/// while the database thread applies the one before, dead-letters poison messages and
/// commits offsets, in the order `ConsumerStateMachine` allows.
///
/// Confined to the Kafka thread: rebalance callbacks run inside `poll`, on that same thread
/// (on revoke, the batch being applied and the batch in hand are both applied and committed
/// before the partitions go). Hence `@unchecked Sendable`, for the callback's signature only.
final class ConsumerLoop: @unchecked Sendable {
    private let service: ConsumerService
    private let database: DatabaseWorker
    private let applier: EffectApplier
    /// The batch the database thread holds: its result, once `done` is signalled.
    private var job: ApplyJob?
    /// Set once in `run`, before the first poll (the consumer's callbacks need this loop).
    private var consumer: KafkaConsumer?
    /// Sends poison messages to the dead-letter topic; closed when the run ends.
    private let dlqProducer: KafkaProducer

    init(service: ConsumerService, dlq: KafkaProducer) {
        self.service = service
        dlqProducer = dlq
        database = DatabaseWorker(service: service)
        applier = EffectApplier(tables: service.configuration.tables)
    }

    private var configuration: ConsumerConfiguration { service.configuration }
    private var logger: Logger { service.logger }
    private var metrics: ConsumerMetrics { service.metrics }

    func run() throws {
        defer { dlqProducer.close() }
        let consumer = try KafkaConsumer(
            configuration: configuration.memberKafka, groupID: configuration.groupID, logger: logger,
            onAssign: { [logger, service, group = configuration.groupID] partitions in
                service.assigned.store(partitions.count, ordering: .relaxed)
                service.metrics.assignedPartitions.record(partitions.count)
                if partitions.isEmpty {
                    // Legitimate for a standby, but often a scale-out that cannot help.
                    logger.warning("no partitions assigned: this member stands by, and takes partitions over when another member of the group leaves",
                                   metadata: ["group": "\(group)",
                                              "fix": "to have every member work, give the topics at least as many partitions as the group has members"])
                } else {
                    logger.info("partitions assigned", metadata: ["partitions": "\(partitions.count)"])
                }
                service.progress.assigned(partitions)
            },
            onRevoke: { [self] partitions in
                logger.info("partitions revoked; committing the batch in hand", metadata: ["partitions": "\(partitions.count)"])
                handOver()
                service.progress.revoked(partitions)
                service.assigned.store(0, ordering: .relaxed)
                service.metrics.assignedPartitions.record(0)
            })
        self.consumer = consumer
        try consumer.subscribe(configuration.topics)
        logger.info("consuming", metadata: ["group": "\(configuration.groupID)", "topics": "\(configuration.topics.joined(separator: ","))"])
        var lastLag = ContinuousClock.now
        service.progress.start()
        defer {
            handOver()
            // A crashed job's result is dropped unread; its offsets were never committed.
            if let job { job.done.wait(); self.job = nil }
            consumer.close()
            database.close()
            service.progress.stop()
        }
        while !service.isStopping {
            let pollStart = ProgressRecorder.wallNow()
            let polled = try pollBatch(consumer)
            // Parse and render this batch while the database thread still applies the one
            // before, then finish that one, hand it this one and go back to polling.
            let inHand = service.core.withLock { $0.inHand }
            let prepared = inHand.isEmpty ? nil : prepare(inHand)
            try settleInFlight()
            // Nothing came and nothing waits: this member has read everything it holds.
            if !polled && inHand.isEmpty { service.progress.idle(pollStart: pollStart) }
            if let prepared { startApply(prepared) }
            if ContinuousClock.now - lastLag > .seconds(5) {
                lastLag = ContinuousClock.now
                if let lag = consumer.lag() { metrics.lag.record(lag) }
            }
        }
    }

    /// Polls one message, then more until the batch is full or `batchWait` has passed.
    /// Returns whether anything came.
    private func pollBatch(_ consumer: KafkaConsumer) throws -> Bool {
        guard let message = try consumer.poll(timeout: service.core.withLock { $0.pollTimeout }) else { return false }
        var action = service.core.withLock { $0.received(message) }
        let deadline = ContinuousClock.now + configuration.batchWait
        while action == .pollMore, ContinuousClock.now < deadline,
              let more = try consumer.poll(timeout: .zero) ?? consumer.poll(timeout: .milliseconds(1)) {
            action = service.core.withLock { $0.received(more) }
        }
        return true
    }

    /// A revoke or the end of the run: applies and commits everything polled so far, then
    /// commits synchronously what was committed asynchronously, so the next owner of the
    /// partitions starts after the last applied batch. Nothing after a simulated crash.
    private func handOver() {
        if service.core.withLock({ $0.crashed }) { return }
        try? flushInHand()
        if service.core.withLock({ $0.crashed }) { return }  // the flush may have crashed (test hook)
        guard let offsets = service.core.withLock({ $0.commitsToSettle }), let consumer else { return }
        do {
            try consumer.commit(offsets)
            service.core.withLock { $0.committedSynchronously() }
        } catch {
            logger.warning("offset commit failed; the last batches may be redelivered and will be deduplicated", metadata: ["error": "\(error)"])
        }
    }

    /// Applies and commits the batch the database thread holds, then the batch in hand.
    private func flushInHand() throws {
        try settleInFlight()
        let inHand = service.core.withLock { $0.inHand }
        guard !inHand.isEmpty else { return }
        startApply(prepare(inHand))
        try settleInFlight()
    }

    /// Parses `batch` and renders its statement's parameters: CPU work for the Kafka thread.
    private func prepare(_ batch: [KafkaMessage]) -> PreparedBatch {
        let prepared = applier.prepare(batch)
        service.hooks.afterPrepare?(batch.count)
        return prepared
    }

    /// Hands the batch in hand, parsed and rendered on this thread, to the database thread.
    private func startApply(_ prepared: PreparedBatch) {
        guard let batch = service.core.withLock({ $0.startApply() }) else { return }
        precondition(batch.count == prepared.plan.messages.count, "the prepared batch is the batch in hand")
        let job = ApplyJob(batch: batch, prepared: prepared)
        self.job = job
        database.apply(job)
    }

    /// Waits for the database thread's batch, then dead-letters its poison messages and
    /// commits its offsets. Rethrows what retrying could not fix (and a simulated crash).
    private func settleInFlight() throws {
        guard let job, let consumer else { return }
        job.done.wait()
        self.job = nil
        switch job.result! {
        case .success(let outcomes):
            try finish(service.core.withLock { $0.applied(outcomes) }, consumer: consumer)
            service.progress.applied(job.batch)
        case .failure(let error):
            service.core.withLock { $0.applyFailed(crashed: error is SimulatedCrash) }
            throw error
        }
    }

    private func finish(_ settlement: ConsumerStateMachine.Settlement, consumer: KafkaConsumer) throws {
        for type in settlement.appliedTypes { metrics.applied(type).increment() }
        if settlement.duplicates > 0 { metrics.duplicates.increment(by: settlement.duplicates) }
        try deadLetter(settlement.poison)
        // Asynchronous: waiting for the coordinator's answer cost a broker round trip per
        // batch, about a third of the batch's time. A commit lost this way (the consumer
        // dies first, the coordinator moves) is a redelivery, which the status guard turns
        // into counted duplicates; `handOver` makes it synchronous at every handover.
        do {
            try consumer.commit(settlement.offsets, asynchronously: true)
            service.core.withLock { $0.committedAsynchronously(settlement.offsets) }
        } catch {
            // The effects are committed and guarded: a redelivery is a counted no-op.
            logger.warning("offset commit failed; the batch may be redelivered and will be deduplicated", metadata: ["error": "\(error)"])
        }
        metrics.batchSize.record(settlement.size)
        service.core.withLock { $0.settled(settlement) }
    }

    /// Sends a batch's poison messages to the dead-letter topic, in batch order, and returns
    /// once every one is acknowledged (the batch's offsets are committed only after). All
    /// are produced before waiting, so a batch costs one broker round trip, not one per
    /// message; a failed send is retried, keeping the order, until it succeeds or stops.
    private func deadLetter(_ poison: [ConsumerStateMachine.Poison]) throws {
        guard !poison.isEmpty else { return }
        var pending = poison.map { (record: deadLetterRecord($0), reason: $0.reason) }
        while true {
            let results = dlqProducer.sendInOrderBlocking(pending.map(\.record))
            // Resend from the first failure on, so the dead-letter topic keeps batch order
            // (a later message that did arrive is then dead-lettered twice: at least once).
            let firstFailure = results.firstIndex { if case .failure = $0 { true } else { false } } ?? results.count
            for item in pending[..<firstFailure] { metrics.deadLettered(item.reason).increment() }
            guard firstFailure < results.count, case .failure(let error) = results[firstFailure] else {
                // One line per batch, once all are acknowledged (the headers carry the rest).
                let summary = PoisonSummary(poison.map { ($0.message.topic, $0.message.partition, $0.message.offset, $0.reason) })
                logger.warning("poison messages dead-lettered", metadata: [
                    "messages": "\(poison.count)", "reason": "\(summary.reasons)", "topics": "\(summary.topics)"])
                if service.core.withLock({ $0.deadLettersSent() }) { logger.notice("the dead-letter topic takes sends again; no longer stalled") }
                return
            }
            pending.removeFirst(firstFailure)
            let action = service.core.withLock {
                $0.deadLetterFailed(ConsumerService.briefly(error), topic: configuration.deadLetterTopic)
            }
            switch action {
            case .giveUp:
                logger.error("dead-letter send failed; giving the batch up (its offsets stay uncommitted)", metadata: ["error": "\(error)", "messages": "\(pending.count)"])
                throw error
            case .retry(let delay, let stallBegins):
                logger.log(level: stallBegins ? .error : .warning,
                           stallBegins ? "dead-letter sends keep failing; stalled (readyz 503), retrying (offsets are held)" : "dead-letter send failed; retrying (offsets are held)",
                           metadata: ["error": "\(error)", "messages": "\(pending.count)"])
                Thread.sleep(forTimeInterval: delay / .seconds(1))
            }
        }
    }

    /// The poison message as it is, with the error headers and where it came from.
    private func deadLetterRecord(_ poison: ConsumerStateMachine.Poison) -> OutgoingRecord {
        let message = poison.message
        var headers = RecordContract.deadLetterHeaders(from: message.headers, reason: poison.reason, error: poison.detail,
                                                       originalTopic: message.topic)
        headers.append((RecordContract.DeadLetterHeader.originalPartition, Array(String(message.partition).utf8)))
        headers.append((RecordContract.DeadLetterHeader.originalOffset, Array(String(message.offset).utf8)))
        return OutgoingRecord(topic: configuration.deadLetterTopic, key: message.key, value: message.value, headers: headers)
    }
}

/// One batch handed to the database thread; `done` is signalled once `result` is set.
final class ApplyJob: @unchecked Sendable {
    let batch: [KafkaMessage]
    let prepared: PreparedBatch
    let done = DispatchSemaphore(value: 0)
    var result: Result<[ApplyOutcome], any Error>?

    init(batch: [KafkaMessage], prepared: PreparedBatch) {
        self.batch = batch
        self.prepared = prepared
    }
}
