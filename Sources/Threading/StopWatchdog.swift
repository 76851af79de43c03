import Dispatch
import Synchronization

/// The bound a graceful stop promises (`drain-timeout`), kept even when the teardown is
/// not: armed when the stop begins, it calls `overrun` once the timeout passes unless
/// `finish()` came first. A Dispatch timer, so it fires even while a stuck teardown holds
/// the cooperative pool or a blocking libpq/librdkafka call never returns. Shared by the
/// relay and the consumers (both keep their blocking work on `BlockingThread`s).
public final class StopWatchdog: Sendable {
    private let state = Mutex<(armed: Bool, finished: Bool)>((false, false))

    public init() {}

    /// Arms the watchdog on the first call; later calls (a second SIGTERM) change nothing.
    public func arm(timeout: Duration, overrun: @escaping @Sendable () -> Void) {
        let first = state.withLock { state -> Bool in
            defer { state.armed = true }
            return !state.armed
        }
        guard first else { return }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout / .seconds(1)) { [self] in
            guard !state.withLock({ $0.finished }) else { return }
            overrun()
        }
    }

    /// The stop finished: an armed watchdog stays quiet.
    public func finish() { state.withLock { $0.finished = true } }
}
