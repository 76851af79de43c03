import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import RelayCore
import Schema
import Synchronization
import Threading

/// Publishes the captured outbox rows: producer I/O only. What may be sent, confirmed,
/// dead-lettered or paused is the delivery state machine's call (`DeliveryLine`).
///
/// One capture thread calls `beginTransaction`/`publish`/`commitTransaction`; delivery
/// reports arrive on librdkafka's poller thread; the dead-letter worker acknowledges the
/// rows it handled.
final class Publisher: Sendable {
    let line: DeliveryLine
    let producers: ProducerHolder
    let deadLetters: DeadLetterWorker
    private let configuration: RelayConfiguration
    private let logger: Logger
    /// librdkafka's per-record limit, checked before producing (`RecordLimits`).
    private let maxMessageBytes: Int

    init(configuration: RelayConfiguration, logger: Logger, metrics: RelayMetrics, health: RelayHealth) throws {
        self.configuration = configuration
        self.logger = logger
        let line = DeliveryLine(configuration: configuration, logger: logger, metrics: metrics, health: health)
        self.line = line
        maxMessageBytes = configuration.kafka.properties["message.max.bytes"].flatMap(Int.init) ?? RecordLimits.defaultMaxMessageBytes
        // The worker and the report handler get the line and the holder, never the
        // publisher: no back-references.
        let handler = ReportHandler(line: line, idHeader: Self.idHeader(configuration.headerStyle), logger: logger)
        producers = try ProducerHolder(
            configuration: configuration.kafka, logger: logger,
            onDelivery: { reports in handler.handle(reports) },
            onError: { error in
                // Credentials or TLS refused: not a transient outage; /readyz says why.
                if error.code == .authentication || error.code == .tls { health.noteKafkaRefusal("\(error)") }
            },
            onFatalError: { error in line.requestRestart("Kafka producer fatal error: \(error)") },
            onStatistics: { trips in metrics.recordBrokerRoundTrips(trips) })
        deadLetters = DeadLetterWorker(configuration: configuration, line: line, producers: producers, logger: logger, metrics: metrics)
        handler.deadLetters.withLock { $0 = deadLetters }
    }

    /// Starts the producer's delivery-report poller and the dead-letter worker's thread.
    func start() {
        producers.start()
        deadLetters.start()
    }

    /// Stops the dead-letter worker, then flushes (at most until `deadline`) and destroys
    /// the producer. Blocks.
    func close(deadline: ContinuousClock.Instant) {
        deadLetters.stop(deadline: deadline)
        let left = max(.zero, deadline - .now)
        producers.close(timeout: min(left, .seconds(5)))
    }

    func close(deadline: ContinuousClock.Instant) async {
        await runBlocking { [self] in close(deadline: deadline) }
    }

    // MARK: the capture thread's calls

    /// Publishes one row of the open transaction, straight from the decoded message (the
    /// view is copied only when the row goes to the dead-letter path). Blocks while the
    /// window is full (see `DeliveryLine.reserve`).
    func publish(_ row: OutboxRowView, commitLSN: LSN, whileBlocked: () throws -> Void) throws {
        let size = row.key.count + row.payload.count
        let token = try line.reserve(size: size, whileBlocked: whileBlocked)
        // Without a key there is no per-key order to keep: such a row is malformed.
        var decision: TopicRouter.Decision = row.key.isEmpty ? .deadLetter(.malformedRow, "mq_key is empty") : route(row.topic)
        if case .publish = decision {
            // The exact measure builds every header once more (a time conversion and the
            // LSN's digits): a drain profile showed it. Only a record the cheap bound puts
            // near the limit needs it.
            let bound = RowHeaders.upperBound(row)
            let headers = RecordLimits.estimatedSize(key: row.key.count, value: row.payload.count,
                                                     headerNameAndValueBytes: bound.bytes, headerCount: bound.count) <= maxMessageBytes
                ? bound : RowHeaders.measure(configuration.headerStyle, row, commitLSN: commitLSN)
            let estimated = RecordLimits.estimatedSize(key: row.key.count, value: row.payload.count,
                                                       headerNameAndValueBytes: headers.bytes, headerCount: headers.count)
            if estimated > maxMessageBytes {
                decision = .deadLetter(.messageTooLarge, "the record is about \(estimated) bytes, over message.max.bytes \(maxMessageBytes)")
            }
        }
        switch decision {
        case .deadLetter(let reason, let detail):
            deadLetter(row, commitLSN: commitLSN, token: token, size: size, reason: reason, detail: detail,
                       topic: String(decoding: row.topic, as: UTF8.self))
        case .publish(let topic):
            try produce(topic: topic, row: row, commitLSN: commitLSN, token: token, size: size, whileBlocked: whileBlocked)
        }
    }

    /// A row the extractor could not read: it goes to the dead-letter path with what is known.
    func publishMalformed(_ error: MalformedOutboxRow, whileBlocked: () throws -> Void) throws {
        let token = try line.reserve(size: 0, whileBlocked: whileBlocked)
        deadLetters.submit(DeadLetterJob(token: token, size: 0, outboxID: error.outboxID, reason: .malformedRow,
                                         detail: error.description, originalTopic: "", key: [], value: [],
                                         headers: error.outboxID.map { [(Self.idHeader(configuration.headerStyle), Array(String($0).utf8))] } ?? []))
    }

    /// The last topic's routing decision. Rows of a stream mostly share a few topics, so
    /// this saves validating and hashing the topic per row. Capture thread only.
    nonisolated(unsafe) private var lastRoute: (topic: [UInt8], decision: TopicRouter.Decision)?

    private func route(_ topic: UnsafeRawBufferPointer) -> TopicRouter.Decision {
        if let lastRoute, lastRoute.topic.elementsEqual(topic) { return lastRoute.decision }
        let decision = configuration.router.route(String(decoding: topic, as: UTF8.self))
        lastRoute = (Array(topic), decision)
        return decision
    }

    /// Where the configured style keeps the outbox id.
    static func idHeader(_ style: HeaderStyle) -> String {
        switch style {
        case .outbox: RecordContract.Header.outboxID
        case .debezium: RecordContract.DebeziumHeader.id
        case .cloudevents: RecordContract.CloudEventsHeader.id
        }
    }

    private func produce(topic: String, row: OutboxRowView, commitLSN: LSN, token: UInt64, size: Int,
                         whileBlocked: () throws -> Void) throws {
        while true {
            do {
                let producer = try producers.producer()
                try producer.produce(topic: topic, key: row.key, value: row.payload, headers: RowHeaders.make(configuration.headerStyle, for: row, commitLSN: commitLSN), token: token)
                return
            } catch where error.code == .queueFull {
                // librdkafka's own bound: wait for deliveries to make room, unless the
                // session restarts or a stop's deadline passed meanwhile.
                if let reason = line.pendingRestart { throw SessionRestart(reason: reason) }
                if let deadline = line.stopDeadline, ContinuousClock.now >= deadline {
                    throw StopDeadlinePassed(unacknowledged: line.inFlightEvents)
                }
                try whileBlocked()
                Thread.sleep(forTimeInterval: 0.002)
            } catch where error.code == .closed {
                throw SessionRestart(reason: "the Kafka producer is being recreated")
            } catch {
                switch line.failed(topic: topic, error: error, stage: .produce) {
                case .deadLetter(let reason):
                    logger.error("row refused by the Kafka client; dead-lettering it", metadata: ["outbox_id": "\(row.id)", "error": "\(error.name)"])
                    deadLetter(row, commitLSN: commitLSN, token: token, size: size, reason: reason, detail: "\(error.name): \(error.message)", topic: topic)
                    return
                case .pause, .restartSession, .ignore:
                    throw SessionRestart(reason: "producing to \(topic) failed: \(error.name)")
                }
            }
        }
    }

    private func deadLetter(_ row: OutboxRowView, commitLSN: LSN, token: UInt64, size: Int, reason: DeadLetterReason, detail: String, topic: String) {
        let owned = row.owned()
        deadLetters.submit(DeadLetterJob(token: token, size: size, outboxID: row.id, reason: reason, detail: detail,
                                         originalTopic: topic, key: owned.key, value: owned.payload,
                                         headers: RowHeaders.list(configuration.headerStyle, for: owned, commitLSN: commitLSN)))
    }
}

/// Delivery reports from librdkafka's poller thread: successes are acknowledged together
/// (one lock, one wake-up of the capture thread); failures go to the state machine one by one.
final class ReportHandler: Sendable {
    let line: DeliveryLine
    let logger: Logger
    /// The header holding the outbox id in the configured style.
    let idHeader: String
    /// Set once, right after the worker exists (it needs the producer this handler serves).
    let deadLetters = Mutex<DeadLetterWorker?>(nil)

    init(line: DeliveryLine, idHeader: String, logger: Logger) { self.line = line; self.idHeader = idHeader; self.logger = logger }

    func handle(_ reports: [DeliveryReport]) {
        var successes: [(token: UInt64, size: Int)] = []
        successes.reserveCapacity(reports.count)
        for report in reports {
            guard let error = report.error else {
                successes.append((report.token, report.size))
                continue
            }
            let failed = report.failed
            guard case .deadLetter(let reason) = line.failed(topic: failed?.topic ?? "", error: error, stage: .report) else { continue }
            let id = failed?.header(idHeader).flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
            logger.error("row could not be delivered; dead-lettering it", metadata: ["outbox_id": "\(id.map(String.init) ?? "?")", "error": "\(error.name)"])
            deadLetters.withLock { $0 }?.submit(DeadLetterJob(
                token: report.token, size: report.size, outboxID: id, reason: reason, detail: "\(error.name): \(error.message)",
                originalTopic: failed?.topic ?? "", key: failed?.key ?? [], value: failed?.value ?? [], headers: failed?.headers ?? []))
        }
        if !successes.isEmpty { line.acknowledge(successes, published: true) }
    }
}
