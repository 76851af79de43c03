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
