import Foundation
import Synchronization

/// A row that cannot be published, with its place in the delivery line.
struct DeadLetterJob: Sendable {
    /// The tracker token to acknowledge once the row is durably dead-lettered.
    var token: UInt64?
    var size: Int
    var letter: DeadLetter
}

/// The rows waiting for the dead-letter worker. The capture thread and the report handler
/// put jobs in; the worker takes them out on its own thread. It exists before the producer
/// and the worker, so the publisher builds its parts in order, each with what it needs:
/// the line, this queue, the report handler (the producer's callback), the producer, then
/// the worker that reads the queue and sends through the producer.
final class DeadLetterQueue: Sendable {
    private let jobs = Mutex<[DeadLetterJob]>([])
    private let signal = DispatchSemaphore(value: 0)

    func submit(_ job: DeadLetterJob) {
        jobs.withLock { $0.append(job) }
        signal.signal()
    }

    /// The oldest job, if any.
    func next() -> DeadLetterJob? {
        jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }

    /// Sleeps until a job is submitted or `wake()` is called (a signal no one waited for
    /// makes the next wait return at once; the worker looks at the queue again anyway).
    func wait() { signal.wait() }

    /// Ends a `wait()` without a job: the worker is stopping.
    func wake() { signal.signal() }
}
