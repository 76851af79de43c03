import Foundation
import Synchronization

/// A dedicated thread that repeatedly runs a blocking poll (which wakes as soon as
/// librdkafka has events, or after its timeout), so that delivery reports and consumer
/// messages never wait on Swift's cooperative pool or a sleep loop.
///
/// Created idle: the thread exists only from `start()` on, so constructing its owner
/// spawns nothing (swift-service-lifecycle's rule for `init`).
final class PollerThread: Sendable {
    private enum Phase { case idle, running, stopped }
    private let phase = Mutex<Phase>(.idle)
    private let running = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let name: String
    private let wake: @Sendable () -> Void
    private let poll: @Sendable () -> Void

    /// - Parameter wake: makes a blocked `poll` return now, so `stop()` does not wait out
    ///   its timeout (a producer's close, and so the relay's start-up preflight, would
    ///   otherwise take up to one poll timeout longer).
    init(name: String, wake: @escaping @Sendable () -> Void = {}, _ poll: @escaping @Sendable () -> Void) {
        self.name = name
        self.wake = wake
        self.poll = poll
    }

    /// Starts the thread. Later calls, and calls after `stop()`, do nothing.
    func start() {
        guard phase.withLock({ phase -> Bool in
            guard phase == .idle else { return false }
            phase = .running
            return true
        }) else { return }
        running.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            while running.load(ordering: .acquiring) { poll() }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Stops the loop and waits for the current poll to return. A poller never started
    /// just becomes unstartable.
    func stop() {
        let wasRunning = phase.withLock { phase -> Bool in
            defer { phase = .stopped }
            return phase == .running
        }
        guard wasRunning else { return }
        running.store(false, ordering: .releasing)
        wake()
        finished.wait()
    }

    var isRunning: Bool { phase.withLock { $0 == .running } }
}
