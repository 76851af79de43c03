#if canImport(Glibc)
import Glibc
#endif

/// A plain POSIX thread for blocking C work (connects, the replication loop), so that it
/// never occupies a thread of Swift's cooperative pool.
public final class BlockingThread: @unchecked Sendable {
    private let body: @Sendable () -> Void
    private var thread = pthread_t()

    public init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    public func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let rc = pthread_create(&thread, &attributes, { raw in
            let this = Unmanaged<BlockingThread>.fromOpaque(raw!).takeRetainedValue()
            this.body()
            return nil
        }, context)
        pthread_attr_destroy(&attributes)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }
}

/// Runs one blocking call on a fresh POSIX thread and awaits its result, so that the
/// caller's cooperative thread is never held by C code.
public func runBlocking<T: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
        BlockingThread {
            do throws(E) { continuation.resume(returning: .success(try work())) }
            catch { continuation.resume(returning: .failure(error)) }
        }.start()
    }
    return try result.get()
}
