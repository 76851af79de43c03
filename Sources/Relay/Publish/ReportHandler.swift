import KafkaClient
import Logging
import RelayCore

/// Delivery reports from librdkafka's poller thread: successes are acknowledged together
/// (one lock, one wake-up of the capture thread); failures go to the state machine one by
/// one, and those it dead-letters go to the dead-letter queue.
final class ReportHandler: Sendable {
    private let line: DeliveryLine
    private let deadLetters: DeadLetterQueue
    /// The header holding the outbox id in the configured style.
    private let idHeader: String
    private let logger: Logger

    init(line: DeliveryLine, deadLetters: DeadLetterQueue, idHeader: String, logger: Logger) {
        self.line = line; self.deadLetters = deadLetters; self.idHeader = idHeader; self.logger = logger
    }

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
            deadLetters.submit(DeadLetterJob(token: report.token, size: report.size, letter: DeadLetter(
                outboxID: id, reason: reason, detail: "\(error.name): \(error.message)", originalTopic: failed?.topic ?? "",
                key: failed?.key ?? [], value: failed?.value ?? [], headers: failed?.headers ?? [])))
        }
        if !successes.isEmpty { line.acknowledge(successes, published: true) }
    }
}
