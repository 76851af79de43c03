import Foundation
import KafkaClient
import Logging
import PostgresClient
import RelayCore
import Synchronization
import Threading

/// Dead-letters rows off the capture thread: takes them from the `DeadLetterQueue`, marks
/// each DEAD (with the reason) and copies it to the dead-letter topic (`DeadLetter`), then
/// acknowledges its token so the LSN can move past it. Failures are retried with backoff
/// while the row holds its place in the tracker (so the LSN cannot pass an unrecorded
/// row); a session restart re-reads it. Nothing is silently dropped.
///
/// Its UPDATE takes no lock a consumer or the sweeper holds across a wait (the sweeper
/// claims in short transactions and sends outside them), so it cannot stall the line.
final class DeadLetterWorker: Sendable {
    private let configuration: RelayConfiguration
    private let line: DeliveryLine
    private let producers: ProducerHolder
    private let logger: Logger
    private let metrics: RelayMetrics
    private let queue: DeadLetterQueue
    private let running = Atomic<Bool>(true)
    private let stopped = DispatchSemaphore(value: 0)

    init(configuration: RelayConfiguration, line: DeliveryLine, producers: ProducerHolder, queue: DeadLetterQueue,
         logger: Logger, metrics: RelayMetrics) {
        self.configuration = configuration
        self.line = line
        self.producers = producers
        self.queue = queue
        self.logger = logger
        self.metrics = metrics
    }

    func start() {
        BlockingThread { [self] in
            var connection: PGConnection?
            while running.load(ordering: .acquiring) {
                queue.wait()
                while running.load(ordering: .acquiring), let job = queue.next() {
                    process(job, connection: &connection)
                }
            }
            stopped.signal()
        }.start()
    }

    /// Stops the worker, waiting for the job in hand at most until `deadline`. Jobs left
    /// over stay unacknowledged, so their rows are read again at the next start.
    func stop(deadline: ContinuousClock.Instant) {
        running.store(false, ordering: .releasing)
        queue.wake()
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
                // An unreadable id marks nothing: the copy is the record.
                try job.letter.markDeadBlocking(on: connection!)
                try producers.sendBlocking(job.letter.copy(to: configuration.router.deadLetterTopic))
                metrics.deadLettered(job.letter.reason.rawValue, table: job.letter.table).increment()
                logger.warning("row dead-lettered", metadata: [
                    "outbox_id": "\(job.letter.outboxID.map(String.init) ?? "?")", "reason": "\(job.letter.reason.rawValue)",
                    "detail": "\(job.letter.detail.prefix(300))", "dead_letter_topic": "\(configuration.router.deadLetterTopic)"])
                if let token = job.token { line.acknowledge([(token, job.size)], published: false) }
                return
            } catch {
                let delay = configuration.reconnectBackoff.delay(attempt: attempt)
                attempt += 1
                logger.error("dead-lettering failed; the row is held and retried", metadata: [
                    "outbox_id": "\(job.letter.outboxID.map(String.init) ?? "?")", "error": "\(error)", "retry_in": "\(delay)"])
                if error is PGError { connection = nil }
                let until = ContinuousClock.now + delay
                while running.load(ordering: .acquiring), ContinuousClock.now < until { Thread.sleep(forTimeInterval: 0.02) }
            }
        }
    }
}
