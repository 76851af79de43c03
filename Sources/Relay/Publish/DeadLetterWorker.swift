import Foundation
import KafkaClient
import Logging
import PostgresClient
import RelayCore
import Schema
import Synchronization
import Threading

/// A row that cannot be published to its topic.
struct DeadLetterJob: Sendable {
    /// The tracker token to acknowledge once the row is durably dead-lettered.
    var token: UInt64?
    var size: Int
    var outboxID: Int64?
    var reason: DeadLetterReason
    var detail: String
    var originalTopic: String
    var key: [UInt8]
    var value: [UInt8]
    var headers: [(String, [UInt8])]
}

/// Dead-letters rows off the capture thread: marks the row DEAD (with the reason) and
/// copies it to the dead-letter topic, then acknowledges its token so the LSN can move
/// past it. Failures are retried with backoff while the row holds its place in the
/// tracker (so the LSN cannot pass an unrecorded row); a session restart re-reads it.
/// Nothing is silently dropped.
///
/// Its UPDATE takes no lock a consumer or the sweeper holds across a wait (the sweeper
/// claims in short transactions and sends outside them), so it cannot stall the line.
final class DeadLetterWorker: Sendable {
    private let configuration: RelayConfiguration
    private let line: DeliveryLine
    private let producers: ProducerHolder
    private let logger: Logger
    private let metrics: RelayMetrics
    private let queue = Mutex<[DeadLetterJob]>([])
    private let signal = DispatchSemaphore(value: 0)
    private let running = Atomic<Bool>(true)
    private let stopped = DispatchSemaphore(value: 0)

    init(configuration: RelayConfiguration, line: DeliveryLine, producers: ProducerHolder, logger: Logger, metrics: RelayMetrics) {
        self.configuration = configuration
        self.line = line
        self.producers = producers
        self.logger = logger
        self.metrics = metrics
    }

    func start() {
        BlockingThread { [self] in
            var connection: PGConnection?
            while running.load(ordering: .acquiring) {
                signal.wait()
                while running.load(ordering: .acquiring), let job = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                    process(job, connection: &connection)
                }
            }
            stopped.signal()
        }.start()
    }

    func submit(_ job: DeadLetterJob) {
        queue.withLock { $0.append(job) }
        signal.signal()
    }

    /// Stops the worker, waiting for the job in hand at most until `deadline`. Jobs left
    /// over stay unacknowledged, so their rows are read again at the next start.
    func stop(deadline: ContinuousClock.Instant) {
        running.store(false, ordering: .releasing)
        signal.signal()
        let left = max(.zero, deadline - .now)
        _ = stopped.wait(timeout: .now() + .milliseconds(Int(left.components.seconds * 1_000 + left.components.attoseconds / 1_000_000_000_000_000)))
    }

    private func process(_ job: DeadLetterJob, connection: inout PGConnection?) {
        var attempt = 0
        while running.load(ordering: .acquiring) {
            do {
                if connection == nil {
                    connection = try PGConnection.connectBlocking(configuration.databaseURL, applicationName: "\(configuration.applicationName)-dlq")
                }
                try markDead(job, on: connection!)
                try producers.sendBlocking(Self.copy(of: job, to: configuration.router.deadLetterTopic))
                metrics.deadLettered(job.reason.rawValue).increment()
                logger.warning("row dead-lettered", metadata: [
                    "outbox_id": "\(job.outboxID.map(String.init) ?? "?")", "reason": "\(job.reason.rawValue)",
                    "detail": "\(job.detail.prefix(300))", "dead_letter_topic": "\(configuration.router.deadLetterTopic)"])
                if let token = job.token { line.acknowledge([(token, job.size)], published: false) }
                return
            } catch {
                let delay = configuration.reconnectBackoff.delay(attempt: attempt)
                attempt += 1
                logger.error("dead-lettering failed; the row is held and retried", metadata: [
                    "outbox_id": "\(job.outboxID.map(String.init) ?? "?")", "error": "\(error)", "retry_in": "\(delay)"])
                if error is PGError { connection = nil }
                let until = ContinuousClock.now + delay
                while running.load(ordering: .acquiring), ContinuousClock.now < until { Thread.sleep(forTimeInterval: 0.02) }
            }
        }
    }

    private func markDead(_ job: DeadLetterJob, on connection: PGConnection) throws {
        guard let id = job.outboxID else { return }  // unreadable id: the DLQ copy is the record
        // Only INIT rows: a row a consumer already handled (via a sweeper resend) stays as is.
        try connection.queryBlocking("""
            UPDATE outbox SET status = 'DEAD', last_error = $2, last_sent_at = now()
            WHERE outbox_id = $1 AND status = 'INIT'
            """, [.int(id), .text("\(job.reason.rawValue): \(job.detail)".prefix(RecordContract.Limits.maxLastErrorCharacters).description)])
    }

    /// The dead-letter copy of a row (`RecordContract`): its key, its value unless too
    /// large (then its size), its headers plus the dead-letter headers.
    static func copy(of job: DeadLetterJob, to topic: String) -> OutgoingRecord {
        var headers = RecordContract.deadLetterHeaders(from: job.headers, reason: job.reason.rawValue, error: job.detail,
                                                       originalTopic: TopicRouter.printable(job.originalTopic, limit: 249))
        var value = job.value
        if value.count > RecordContract.Limits.maxCopiedValueBytes {
            headers.append((RecordContract.DeadLetterHeader.originalSize, Array(String(value.count).utf8)))
            value = []
        }
        return OutgoingRecord(topic: topic, key: Array(job.key.prefix(RecordContract.Limits.maxCopiedKeyBytes)), value: value, headers: headers)
    }
}
