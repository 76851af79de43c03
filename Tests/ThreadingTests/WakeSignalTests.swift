import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import Threading

@Suite("Wake signal")
struct WakeSignalTests {
    static func readable(_ fd: Int32, waitingMilliseconds: Int32) -> Bool {
        var polled = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&polled, 1, waitingMilliseconds) == 1
    }

    @Test("a signal makes the descriptor readable until drained; signals before a drain count once")
    func signalAndDrain() {
        let wake = WakeSignal()
        #expect(!Self.readable(wake.fd, waitingMilliseconds: 0))
        #expect(!wake.drain(), "nothing to drain before a signal")
        wake.signal()
        wake.signal()
        #expect(Self.readable(wake.fd, waitingMilliseconds: 0))
        #expect(wake.drain())
        #expect(!Self.readable(wake.fd, waitingMilliseconds: 0))
        #expect(!wake.drain())
    }

    @Test("a signal from another thread ends a poll that waits on it")
    func endsAnotherThreadsWait() {
        // The waiting poll runs on a thread of its own, as the relay's do: on the cooperative
        // pool (2 threads here) it would wait for whatever else blocks the pool, and the
        // measurement would be of the other tests.
        let wake = WakeSignal()
        let woke = Atomic<Bool>(false)
        let finished = DispatchSemaphore(value: 0)
        let started = ContinuousClock.now
        Thread {
            woke.store(Self.readable(wake.fd, waitingMilliseconds: 10_000), ordering: .releasing)
            finished.signal()
        }.start()
        Thread.sleep(forTimeInterval: 0.05)
        wake.signal()
        finished.wait()
        let didWake = woke.load(ordering: .acquiring)
        #expect(didWake)
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test("the descriptor is non-blocking and closed on exec")
    func flags() {
        let wake = WakeSignal()
        #expect(fcntl(wake.fd, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(wake.fd, F_GETFD) & FD_CLOEXEC != 0)
    }
}
