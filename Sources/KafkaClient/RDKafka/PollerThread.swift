import Foundation
import Synchronization

/// A dedicated thread that repeatedly runs a blocking poll (which wakes as soon as
/// librdkafka has events, or after its timeout), so that delivery reports and consumer
/// messages never wait on Swift's cooperative pool or a sleep loop.
final class PollerThread: Sendable {
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, _ poll: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while running.load(ordering: .acquiring) { poll() }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Stops the loop and waits for the current poll to return.
    func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { finished.wait() }
    }
}
