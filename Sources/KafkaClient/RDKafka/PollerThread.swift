import Foundation
import Synchronization

/// A dedicated thread that repeatedly runs a blocking poll (which wakes as soon as
/// librdkafka has events, or after its timeout), so that delivery reports and consumer
/// messages never wait on Swift's cooperative pool or a sleep loop.
final class PollerThread: Sendable {
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)
    private let wake: @Sendable () -> Void

    /// - Parameter wake: makes a blocked `poll` return now, so `stop()` does not wait out
    ///   its timeout (a producer's close, and so the relay's start-up preflight, would
    ///   otherwise take up to one poll timeout longer).
    init(name: String, wake: @escaping @Sendable () -> Void = {}, _ poll: @escaping @Sendable () -> Void) {
        self.wake = wake
        let thread = Thread { [self] in
            while running.load(ordering: .acquiring) { poll() }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Stops the loop and waits for the current poll to return.
    func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) {
            wake()
            finished.wait()
        }
    }
}
