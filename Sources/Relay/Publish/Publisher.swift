import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import RelayCore
import Schema
import Threading

/// Publishes the captured outbox rows: producer I/O only. What may be sent, confirmed,
/// dead-lettered or paused is the delivery state machine's call (`DeliveryLine`).
///
/// One capture thread calls `beginTransaction`/`publish`/`commitTransaction`; delivery
/// reports arrive on librdkafka's poller thread; the dead-letter worker acknowledges the
/// rows it handled. Callers speak to the line and the producer through the methods here,
/// never to the parts themselves.
final class Publisher: Sendable {
    private let line: DeliveryLine
    private let producers: ProducerHolder
    private let deadLetters: DeadLetterQueue
    private let deadLetterWorker: DeadLetterWorker
    private let configuration: RelayConfiguration
    private let logger: Logger
    /// librdkafka's per-record limit, checked before producing (`RecordLimits`).
    private let maxMessageBytes: Int

    /// Builds the parts in order, each with what it needs and no back-references: the
    /// line; the dead-letter queue; the report handler, which feeds both; the producer,
    /// which calls the handler; the worker, which drains the queue through the producer.
    init(configuration: RelayConfiguration, logger: Logger, metrics: RelayMetrics, health: RelayHealth) throws {
        self.configuration = configuration
        self.logger = logger
        maxMessageBytes = configuration.kafka.properties["message.max.bytes"].flatMap(Int.init) ?? RecordLimits.defaultMaxMessageBytes
        let line = DeliveryLine(configuration: configuration, logger: logger, metrics: metrics, health: health)
        let deadLetters = DeadLetterQueue()
        let handler = ReportHandler(line: line, deadLetters: deadLetters, idHeader: Self.idHeader(configuration.headerStyle), logger: logger)
        let producers = try ProducerHolder(
            configuration: configuration.kafka, logger: logger,
            onDelivery: { reports in handler.handle(reports) },
            onError: { error in
                // Credentials or TLS refused: not a transient outage; /readyz says why.
                if error.code == .authentication || error.code == .tls { health.noteKafkaRefusal("\(error)") }
            },
            onFatalError: { error in line.requestRestart("Kafka producer fatal error: \(error)") },
            onStatistics: { trips in metrics.recordBrokerRoundTrips(trips) })
        self.line = line
        self.deadLetters = deadLetters
        self.producers = producers
        deadLetterWorker = DeadLetterWorker(configuration: configuration, line: line, producers: producers, queue: deadLetters,
                                            logger: logger, metrics: metrics)
    }

    /// Starts the producer's delivery-report poller and the dead-letter worker's thread.
    func start() {
        producers.start()
        deadLetterWorker.start()
    }

    /// Stops the dead-letter worker, then flushes (at most until `deadline`) and destroys
    /// the producer. Blocks.
    func close(deadline: ContinuousClock.Instant) {
        deadLetterWorker.stop(deadline: deadline)
        let left = max(.zero, deadline - .now)
        producers.close(timeout: min(left, .seconds(5)))
    }

    func close(deadline: ContinuousClock.Instant) async {
        await runBlocking { [self] in close(deadline: deadline) }
    }

    // MARK: sessions and stops (the supervisor and the capture modes)

    /// A capture session starts from the slot's `confirmed` position: nothing in flight.
    func beginSession(confirmed: LSN) { line.reset(confirmed: confirmed) }

    /// Asks the capture to stop at its next transaction boundary and to wait for
    /// deliveries until `deadline`. Any thread.
    func requestStop(deadline: ContinuousClock.Instant) { line.requestStop(deadline: deadline) }

    /// When the wait for deliveries gives up; nil until a stop is requested.
    var stopDeadline: ContinuousClock.Instant? { line.stopDeadline }

    /// Why the session must start over (a fatal producer error, a pause), if it must.
    var pendingRestart: String? { line.pendingRestart }

    /// The pending restart is a pause's, already reported with its cause and fix.
    var restartIsPause: Bool { line.restartIsPause }

    /// Replaces the producer after a session restart; what the old one still held is read
    /// again from the slot. Blocks: call it from a dedicated thread.
    func recreateProducer() throws { try producers.recreate() }

    // MARK: acknowledgement (the capture modes)

    /// Events published and not yet acknowledged.
    var inFlightEvents: Int { line.inFlightEvents }

    /// The LSN every acknowledged transaction allows confirming (`LSNTracker`).
    var confirmableLSN: LSN { line.confirmableLSN }

    /// The server's WAL end (a keepalive, or a notify-mode read's end): with nothing in
    /// flight the confirmable LSN may move to it, so a quiet outbox does not pin WAL.
    func observeServerWALEnd(_ lsn: LSN) { line.observeServerWALEnd(lsn) }

    /// Waits until nothing is in flight, or `deadline` (or the stop's, if earlier) passes.
    func drain(until deadline: ContinuousClock.Instant) -> DeliveryStateMachine.DrainState {
        line.drain(until: deadline)
    }

    /// `drain(until:)`, running `whileWaiting` about every 50 ms (status updates).
    func drain(until deadline: ContinuousClock.Instant, whileWaiting: () throws -> Void) rethrows -> DeliveryStateMachine.DrainState {
        try line.drain(until: deadline, whileWaiting: whileWaiting)
    }

    // MARK: the producer's other users

    /// First start: publishes the rows `connection`'s snapshot holds (`GapPublisher`) on
    /// this producer, giving up when the session stops or must restart. Blocks.
    func publishGap(_ gap: GapPublisher, from connection: PGConnection) throws -> GapPublisher.Outcome {
        try gap.publish(from: connection, producer: try producers.producer(),
                        giveUp: { [line] in line.stopDeadline != nil || line.pendingRestart != nil })
    }

    /// Runs `sweeper` on this producer until cancelled, waiting on this line's
    /// confirmations: it re-sends only what the stream has published (invariant 7).
    func runSweeper(_ sweeper: Sweeper, isActive: @escaping @Sendable () -> Bool) async {
        await sweeper.run(producers: producers, isActive: isActive, confirmed: { [line] in line.confirmableLSN })
    }

    // MARK: the capture thread's calls

    /// A transaction's Begin (or Stream Commit): its events follow, then `commitTransaction`.
    func beginTransaction(commitTime: Int64) { line.beginTransaction(commitTime: commitTime) }

    /// The open transaction's Commit, ending at `endLSN`.
    func commitTransaction(endLSN: LSN) { line.commitTransaction(endLSN: endLSN) }

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
        deadLetters.submit(DeadLetterJob(token: token, size: 0, letter: DeadLetter(
            outboxID: error.outboxID, reason: .malformedRow, detail: error.description, originalTopic: "", key: [], value: [],
            headers: error.outboxID.map { [(Self.idHeader(configuration.headerStyle), Array(String($0).utf8))] } ?? [],
            table: error.table)))
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
        let record = row.owned().record(on: topic, style: configuration.headerStyle, commitLSN: commitLSN)
        deadLetters.submit(DeadLetterJob(token: token, size: size,
                                         letter: DeadLetter(outboxID: row.id, reason: reason, detail: detail, record: record)))
    }
}
