import Foundation
import Logging
import PostgresClient
import RelayCore
import Synchronization

/// A row that cannot be published to its topic.
struct DeadLetterJob: Sendable {
    /// The tracker token to acknowledge once the row is durably dead-lettered; nil for
    /// rows outside the capture stream (the sweeper's).
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

/// Marks rows DEAD with their reason and copies them to the dead-letter topic, on its own
/// thread with its own PostgreSQL connection, then acknowledges them to the tracker. It
/// retries forever with backoff: until a row is dead-lettered durably, the LSN holds and
/// a restarted relay meets the row again. Nothing is silently dropped.
final class DeadLetterWorker: @unchecked Sendable {
    /// Dead-letter copies carry at most this much of the original payload; larger values
    /// are replaced by their size (the row itself still holds the payload).
    static let maxCopiedValueBytes = 256 << 10

    private let configuration: RelayConfiguration
    private let logger: Logger
    private let metrics: RelayMetrics
    weak var publisher: Publisher?
    private let queue = Mutex<[DeadLetterJob]>([])
    private let signal = DispatchSemaphore(value: 0)
    private let running = Atomic<Bool>(true)
    private let stopped = DispatchSemaphore(value: 0)
    private var connection: PGConnection?

    init(configuration: RelayConfiguration, logger: Logger, metrics: RelayMetrics) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
    }

    func start() {
        BlockingThread { [self] in
            while running.load(ordering: .acquiring) {
                signal.wait()
                while let job = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                    process(job)
                }
            }
            connection = nil
            stopped.signal()
        }.start()
    }

    func submit(_ job: DeadLetterJob) {
        queue.withLock { $0.append(job) }
        signal.signal()
    }

    func stop() {
        running.store(false, ordering: .releasing)
        signal.signal()
        _ = stopped.wait(timeout: .now() + 10)
    }

    private func process(_ job: DeadLetterJob) {
        var attempt = 0
        while running.load(ordering: .acquiring) {
            do {
                try markDead(job)
                try copyToDeadLetterTopic(job)
                metrics.deadLettered(job.reason.rawValue).increment()
                logger.warning("row dead-lettered", metadata: [
                    "outbox_id": "\(job.outboxID.map(String.init) ?? "?")", "reason": "\(job.reason.rawValue)",
                    "detail": "\(job.detail.prefix(300))", "dead_letter_topic": "\(configuration.router.deadLetterTopic)"])
                if let token = job.token { publisher?.acknowledge(token: token, size: job.size, published: false) }
                return
            } catch {
                let delay = configuration.reconnectBackoff.delay(attempt: attempt)
                attempt += 1
                logger.error("dead-lettering failed; the row is held and retried", metadata: [
                    "outbox_id": "\(job.outboxID.map(String.init) ?? "?")", "error": "\(error)", "retry_in": "\(delay)"])
                if error is PGError { connection = nil }
                Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) * 1e-18)
            }
        }
    }

    private func markDead(_ job: DeadLetterJob) throws {
        guard let id = job.outboxID else { return }  // unreadable id: the DLQ copy is the record
        if connection == nil {
            connection = try PGConnection.connectBlocking(configuration.databaseURL, applicationName: "\(configuration.applicationName)-dlq")
        }
        // Only INIT rows: a row a consumer already handled (via a sweeper resend) stays as is.
        try connection!.queryBlocking("""
            UPDATE outbox SET status = 'DEAD', last_error = $2, last_sent_at = now()
            WHERE outbox_id = $1 AND status = 'INIT'
            """, [.int(id), .text("\(job.reason.rawValue): \(job.detail)".prefix(2_000).description)])
    }

    private func copyToDeadLetterTopic(_ job: DeadLetterJob) throws {
        guard let publisher else { return }
        var headers = job.headers.filter { !$0.0.hasPrefix("outbox-dlq-") }
        headers.append(("outbox-dlq-reason", Array(job.reason.rawValue.utf8)))
        headers.append(("outbox-dlq-error", Array(job.detail.utf8.prefix(1_000))))
        headers.append(("outbox-dlq-original-topic", Array(TopicRouter.printable(job.originalTopic, limit: 249).utf8)))
        var value = job.value
        if value.count > Self.maxCopiedValueBytes {
            headers.append(("outbox-dlq-original-size", Array(String(value.count).utf8)))
            value = []
        }
        try publisher.sendBlocking(topic: configuration.router.deadLetterTopic, key: Array(job.key.prefix(4_096)), value: value, headers: headers)
    }
}
