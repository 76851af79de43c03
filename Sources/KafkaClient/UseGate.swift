import Foundation
import Synchronization

/// Admits calls while open; `close` shuts it and waits until the calls inside have left.
/// The calls it guards never block (produce, queue length, purge), so the wait is short;
/// flush and metadata calls are bounded by their own timeouts.
final class UseGate: Sendable {
    private let state = Mutex<(closed: Bool, users: Int)>((false, 0))

    func enter() -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.users += 1
            return true
        }
    }

    func leave() { state.withLock { $0.users -= 1 } }

    /// Returns false when it was already closed.
    func close() -> Bool {
        guard state.withLock({ state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }) else { return false }
        while state.withLock({ $0.users }) > 0 { usleep(200) }
        return true
    }
}
