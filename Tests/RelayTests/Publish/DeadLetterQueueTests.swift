import Foundation
@testable import Relay
import RelayCore
import Testing

@Suite("Dead-letter queue between the report handler, the capture thread and the worker")
struct DeadLetterQueueTests {
    func job(_ token: UInt64) -> DeadLetterJob {
        DeadLetterJob(token: token, size: 1, letter: DeadLetter(outboxID: Int64(token), reason: .brokerRejected, detail: "",
                                                                originalTopic: "T", key: [], value: [], headers: []))
    }

    @Test("jobs come out in the order they went in, then nothing")
    func fifo() {
        let queue = DeadLetterQueue()
        for token in [3, 1, 2] as [UInt64] { queue.submit(job(token)) }
        #expect([queue.next(), queue.next(), queue.next()].map { $0?.token } == [3, 1, 2])
        #expect(queue.next() == nil)
    }

    @Test("a submission from another thread ends the worker's wait; so does wake() with no job")
    func waking() {
        let queue = DeadLetterQueue()
        let woken = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            queue.wait()
            woken.signal()
            queue.wait()
            woken.signal()
        }
        queue.submit(job(7))
        #expect(woken.wait(timeout: .now() + 30) == .success)
        #expect(queue.next()?.token == 7)
        queue.wake()
        #expect(woken.wait(timeout: .now() + 30) == .success)
        #expect(queue.next() == nil)
    }
}
