internal import CEventFD
#if canImport(Glibc)
import Glibc
#endif

/// An eventfd that one thread signals to end another thread's poll(): pass `fd` among the
/// descriptors a blocking wait polls, and `drain()` it when it is readable. One descriptor
/// and no buffer to fill, where a self-pipe takes two and can fill up; signals that pile
/// up before a drain count once. The libpq waits (notify mode, the replication stream) and
/// the HTTP endpoint's poll loop all end their waits this way.
public final class WakeSignal: Sendable {
    /// Non-blocking and closed on exec (a child the relay starts never inherits it).
    public let fd: Int32

    public init() {
        fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(fd >= 0, "eventfd() failed: errno \(errno)")
    }

    deinit { close(fd) }

    /// Makes `fd` readable until the next `drain()`. Safe from any thread.
    public func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Clears a pending signal; returns whether there was one.
    @discardableResult
    public func drain() -> Bool {
        var value: UInt64 = 0
        return read(fd, &value, 8) == 8
    }
}
