import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import RelayCore
import Synchronization

/// Publishes outbox rows through one idempotent producer and tracks their delivery
/// reports against commit order (the LSN tracker) under a bounded in-flight window.
///
/// One capture thread calls `beginTransaction`/`publish`/`commitTransaction`; delivery
/// reports arrive on librdkafka's poller thread; the dead-letter worker acknowledges the
/// rows it handled. A single lock guards the tracker and the window; the capture thread
/// waits on it when the window is full (backpressure: WAL reading stops).
final class Publisher: @unchecked Sendable {
    private let configuration: RelayConfiguration
    private let logger: Logger
    private let metrics: RelayMetrics
    private let health: RelayHealth
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var tracker = LSNTracker()
    private var window: InFlightWindow
    private var producer: KafkaProducer?
    /// Set by librdkafka's fatal-error callback or a report the session cannot absorb; the
    /// capture loop restarts the session (and recreates the producer) when it sees it.
    private let restartReason = Mutex<String?>(nil)
    private let deadLetters: DeadLetterWorker

    init(configuration: RelayConfiguration, logger: Logger, metrics: RelayMetrics, health: RelayHealth) throws {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.health = health
        window = InFlightWindow(maxEvents: configuration.maxInFlightEvents, maxBytes: configuration.maxInFlightBytes)
        deadLetters = DeadLetterWorker(configuration: configuration, logger: logger, metrics: metrics)
        deadLetters.publisher = self
        try recreateProducer()
        deadLetters.start()
    }

    // MARK: producer lifecycle

    /// Replaces the producer, purging whatever the old one still held (those rows are
    /// re-read from the slot, so nothing is lost; some may be delivered twice).
    func recreateProducer() throws {
        condition.lock()
        let old = producer
        producer = nil
        condition.unlock()
        old?.close(timeout: .zero)
        let fresh = try KafkaProducer(
            configuration: configuration.kafka, logger: logger,
            onDelivery: { [weak self] reports in self?.delivered(reports) },
            onFatalError: { [weak self] error in self?.requestRestart("Kafka producer fatal error: \(error)") })
        condition.lock()
        producer = fresh
        condition.unlock()
        restartReason.withLock { $0 = nil }
    }

    func requestRestart(_ reason: String) {
        restartReason.withLock { if $0 == nil { $0 = reason } }
        condition.broadcast()
    }

    var pendingRestart: String? { restartReason.withLock { $0 } }

    /// Starts a new session from the slot's confirmed position: anything in flight from
    /// the previous session no longer counts (its late reports are ignored).
    func reset(confirmed: LSN) {
        condition.lock()
        tracker.reset(confirmed: confirmed)
        window = InFlightWindow(maxEvents: configuration.maxInFlightEvents, maxBytes: configuration.maxInFlightBytes)
        condition.unlock()
        metrics.inFlight.record(0)
    }

    /// `close` for async code: it stops a thread and flushes the producer, which block.
    func close() async {
        await runBlocking { [self] in close() }
    }

    /// Stops the dead-letter worker and flushes and destroys the producer. Blocks.
    func close() {
        deadLetters.stop()
        condition.lock()
        let old = producer
        producer = nil
        condition.unlock()
        old?.close(timeout: .seconds(5))
    }

    // MARK: the capture thread's calls

    func beginTransaction(commitTime: Int64) {
        condition.lock()
        tracker.beginTransaction(commitTime: commitTime)
        condition.unlock()
    }

    /// Returns true when the confirmable LSN moved.
    @discardableResult
    func commitTransaction(endLSN: LSN) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return tracker.commitTransaction(endLSN: endLSN)
    }

    func observeServerWALEnd(_ lsn: LSN) {
        condition.lock()
        tracker.observeServerWALEnd(lsn)
        condition.unlock()
    }

    var confirmableLSN: LSN {
        condition.lock()
        defer { condition.unlock() }
        return tracker.confirmableLSN
    }

    var inFlightEvents: Int {
        condition.lock()
        defer { condition.unlock() }
        return tracker.inFlightEvents
    }

    /// Publishes one row of the open transaction, straight from the decoded message (the
    /// view is copied only when the row goes to the dead-letter path). Blocks while the
    /// window is full, calling `whileBlocked` about every 50 ms (the capture loop keeps
    /// status updates flowing and may throw to abandon the session).
    func publish(_ row: OutboxRowView, whileBlocked: () throws -> Void) throws {
        let size = row.key.count + row.payload.count
        let (token, producer) = try reserve(size: size, whileBlocked: whileBlocked)
        // Without a key there is no per-key order to keep: such a row is malformed.
        let decision: TopicRouter.Decision = row.key.isEmpty ? .deadLetter(.malformedRow, "mq_key is empty") : route(row.topic)
        switch decision {
        case .deadLetter(let reason, let detail):
            let owned = row.owned()
            deadLetters.submit(DeadLetterJob(token: token, size: size, outboxID: row.id, reason: reason, detail: detail,
                                             originalTopic: owned.topic, key: owned.key, value: owned.payload, headers: headers(for: owned)))
        case .publish(let topic):
            guard let producer else { throw SessionRestart(reason: "the Kafka producer is being recreated") }
            try produce(producer, topic: topic, row: row, token: token, whileBlocked: whileBlocked)
        }
    }

    /// The last topic's routing decision. Rows of a stream mostly share a few topics, so
    /// this saves validating and hashing the topic per row. Capture thread only.
    private var lastRoute: (topic: [UInt8], decision: TopicRouter.Decision)?

    private func route(_ topic: UnsafeRawBufferPointer) -> TopicRouter.Decision {
        if let lastRoute, lastRoute.topic.elementsEqual(topic) { return lastRoute.decision }
        let decision = configuration.router.route(String(decoding: topic, as: UTF8.self))
        lastRoute = (Array(topic), decision)
        return decision
    }

    /// A row the extractor could not read: it goes to the dead-letter path with what is known.
    func publishMalformed(_ error: MalformedOutboxRow, whileBlocked: () throws -> Void) throws {
        let (token, _) = try reserve(size: 0, whileBlocked: whileBlocked)
        deadLetters.submit(DeadLetterJob(token: token, size: 0, outboxID: error.outboxID, reason: .malformedRow,
                                         detail: error.description, originalTopic: "", key: [], value: [],
                                         headers: error.outboxID.map { [("outbox-id", Array(String($0).utf8))] } ?? []))
    }

    /// Takes a slot in the window (waiting while it is full) and a tracker token.
    private func reserve(size: Int, whileBlocked: () throws -> Void) throws -> (UInt64, KafkaProducer?) {
        condition.lock()
        while !window.tryAcquire(bytes: size) {
            if let reason = pendingRestart { condition.unlock(); throw SessionRestart(reason: reason) }
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.05))
            condition.unlock()
            try whileBlocked()
            condition.lock()
        }
        let token = tracker.registerEvent()
        let producer = self.producer
        condition.unlock()
        return (token, producer)
    }

    private func produce(_ producer: KafkaProducer, topic: String, row: OutboxRowView, token: UInt64, whileBlocked: () throws -> Void) throws {
        while true {
            do {
                try producer.produce(topic: topic, key: row.key, value: row.payload, headers: headers(for: row), token: token)
                return
            } catch where error.code == .queueFull {
                // librdkafka's own bound: wait for deliveries to make room.
                try whileBlocked()
                Thread.sleep(forTimeInterval: 0.002)
            } catch {
                // Refused before it left the process (e.g. larger than message.max.bytes):
                // the row's fault, so dead-letter it and move on; anything else restarts.
                guard case .deadLetter(let reason) = Self.classify(error) else { throw error }
                logger.error("row refused by the Kafka client; dead-lettering it", metadata: ["outbox_id": "\(row.id)", "error": "\(error.name)"])
                let owned = row.owned()
                deadLetters.submit(DeadLetterJob(token: token, size: row.key.count + row.payload.count, outboxID: row.id, reason: reason,
                                                 detail: "\(error.name): \(error.message)", originalTopic: topic,
                                                 key: owned.key, value: owned.payload, headers: headers(for: owned)))
                return
            }
        }
    }

    /// The record headers (ARCHITECTURE "Kafka record"), from the message bytes.
    private func headers(for row: OutboxRowView) -> KafkaHeaders {
        var headers = KafkaHeaders(capacity: 4)
        headers.add("outbox-id", row.idText)
        headers.add("outbox-type", row.type)
        headers.add("outbox-created-at", row.createdAt)
        if let trace = row.traceParent, !trace.isEmpty { headers.add("traceparent", trace) }
        return headers
    }

    func headers(for row: OutboxRow) -> [(String, [UInt8])] {
        var headers: [(String, [UInt8])] = [
            ("outbox-id", Array(String(row.id).utf8)),
            ("outbox-type", Array(row.type.utf8)),
            ("outbox-created-at", Array(row.createdAt.utf8)),
        ]
        if let trace = row.traceParent, !trace.isEmpty { headers.append(("traceparent", Array(trace.utf8))) }
        return headers
    }

    /// Waits until nothing is in flight or `timeout` passes; returns whether it drained.
    func drain(timeout: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.components.seconds) + Double(timeout.components.attoseconds) * 1e-18)
        condition.lock()
        defer { condition.unlock() }
        while tracker.inFlightEvents > 0 {
            if !condition.wait(until: deadline) { return tracker.inFlightEvents == 0 }
        }
        return true
    }

    // MARK: delivery reports (poller thread) and dead-letter completions

    /// The reports of one librdkafka poll: successes are acknowledged together (one lock,
    /// one wake-up of the capture thread); failures are dealt with one by one.
    private func delivered(_ reports: [DeliveryReport]) {
        var successes: [(token: UInt64, size: Int)] = []
        successes.reserveCapacity(reports.count)
        for report in reports {
            guard let error = report.error else {
                successes.append((report.token, report.size))
                continue
            }
            switch Self.classify(error) {
            case .ignore:
                continue  // purged by a session restart; the rows come again from the slot
            case .restart:
                requestRestart("delivery failed with \(error.name): \(error.message)")
            case .deadLetter(let reason):
                let failed = report.failed
                let id = failed?.header("outbox-id").flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
                logger.error("row could not be delivered; dead-lettering it", metadata: [
                    "outbox_id": "\(id.map(String.init) ?? "?")", "error": "\(error.name)"])
                deadLetters.submit(DeadLetterJob(token: report.token, size: report.size, outboxID: id, reason: reason,
                                                 detail: "\(error.name): \(error.message)", originalTopic: failed?.topic ?? "",
                                                 key: failed?.key ?? [], value: failed?.value ?? [], headers: failed?.headers ?? []))
            }
        }
        if !successes.isEmpty { acknowledge(successes, published: true) }
    }

    enum ReportAction: Equatable { case ignore, restart, deadLetter(DeadLetterReason) }

    /// Which delivery errors are the row's fault (dead-letter it) and which are the
    /// session's (re-read from the slot).
    static func classify(_ error: KafkaError) -> ReportAction {
        switch error.name {
        case "_PURGE_QUEUE", "_PURGE_INFLIGHT": return .ignore
        case "MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE": return .deadLetter(.messageTooLarge)
        case "TOPIC_AUTHORIZATION_FAILED", "INVALID_TOPIC_EXCEPTION", "_INVALID_ARG", "INVALID_RECORD", "CORRUPT_MESSAGE",
             "POLICY_VIOLATION", "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC":
            return .deadLetter(.brokerRejected)
        default:
            return .restart  // fatal, timed out (if a user set message.timeout.ms), anything unexpected
        }
    }

    /// A row is done: delivered, or dead-lettered durably.
    func acknowledge(token: UInt64, size: Int, published: Bool) {
        acknowledge([(token, size)], published: published)
    }

    /// Rows are done. Reports from a previous session (tokens the tracker no longer knows)
    /// are ignored; they neither release window space nor count as published.
    func acknowledge(_ rows: [(token: UInt64, size: Int)], published: Bool) {
        var accepted = 0
        var commitTimes: [Int64] = []
        if published { commitTimes.reserveCapacity(rows.count) }
        condition.lock()
        for (token, size) in rows {
            let commitTime = tracker.commitTime(of: token)
            let ignoredBefore = tracker.ignoredAcks
            tracker.acknowledge(token)
            guard tracker.ignoredAcks == ignoredBefore else { continue }
            window.release(bytes: size)
            accepted += 1
            if published, let commitTime, commitTime > 0 { commitTimes.append(commitTime) }
        }
        let inFlight = tracker.inFlightEvents
        condition.unlock()
        condition.broadcast()
        if published, accepted > 0 {
            metrics.published.increment(by: accepted)
            health.notePublished(accepted)
            let nowMicros = PostgresEpoch.fromUnixMicroseconds(Int64(Date().timeIntervalSince1970 * 1_000_000))
            for commitTime in commitTimes where nowMicros >= commitTime {
                metrics.commitToAck.recordNanoseconds((nowMicros - commitTime) * 1_000)
            }
        }
        metrics.inFlight.record(inFlight)
        health.noteAck()
    }

    /// Sends a dead-letter copy and waits for its report (dead-letter thread only).
    func sendBlocking(topic: String, key: [UInt8], value: [UInt8], headers: [(String, [UInt8])]) throws {
        guard let producer = currentProducer else { throw SessionRestart(reason: "the Kafka producer is being recreated") }
        _ = try producer.sendBlocking(topic: topic, key: key, value: value, headers: headers)
    }

    /// Sends messages outside the capture stream (the sweeper's resends) and waits for all
    /// their reports; element i of the result is message i's error, nil when delivered.
    func sendAll(_ messages: [OutgoingMessage]) async -> [KafkaError?] {
        guard let producer = currentProducer else {
            return messages.map { _ in KafkaError(code: .closed, message: "the Kafka producer is being recreated") }
        }
        return await withTaskGroup(of: (Int, KafkaError?).self) { group in
            for (index, message) in messages.enumerated() {
                group.addTask {
                    do {
                        _ = try await producer.send(topic: message.topic, key: message.key, value: message.value, headers: message.headers)
                        return (index, nil)
                    } catch let error as KafkaError {
                        return (index, error)
                    } catch {
                        return (index, KafkaError(code: .delivery, message: "\(error)"))
                    }
                }
            }
            var results = [KafkaError?](repeating: nil, count: messages.count)
            for await (index, error) in group { results[index] = error }
            return results
        }
    }

    private var currentProducer: KafkaProducer? {
        condition.lock()
        defer { condition.unlock() }
        return producer
    }
}

struct OutgoingMessage: Sendable {
    var topic: String
    var key: [UInt8]
    var value: [UInt8]
    var headers: [(String, [UInt8])]
}

/// The capture session must start over from the slot (producer fatal error, unexpected
/// delivery failure). Not halting: nothing is lost, rows are re-read.
struct SessionRestart: Error, CustomStringConvertible {
    var reason: String
    var description: String { "session restart: \(reason)" }
}
