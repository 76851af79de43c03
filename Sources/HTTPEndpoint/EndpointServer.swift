import Foundation
import Synchronization
import Threading
#if canImport(Glibc)
import Glibc
#endif

/// Serves `Routes` over HTTP/1.x on one dedicated thread: a poll loop over the listening
/// socket and its connections, all non-blocking, so a slow or silent client can hold only
/// its own connection and only until `Limits.exchangeTimeout`. One request per connection.
///
/// Why not an HTTP library: the one this replaced (FlyingFox) links Foundation's URLSession
/// for a proxy handler nobody here uses, and with it libcurl and the libraries libcurl
/// loads: 1.3 MiB more resident memory in an idle relay, and with it GnuTLS stayed mapped
/// (docs/benchmarks.md, "Memory"). Three GET endpoints need none of it.
public final class EndpointServer: Sendable {
    /// The defaults, in one place. Prometheus scrapes once per connection or keeps one open;
    /// neither comes near these.
    public struct Limits: Sendable {
        /// Connections served at once; more wait in the listen backlog.
        public var connections = 32
        /// A request head (request line and headers) longer than this gets 431.
        public var requestHeadBytes = 8_192
        /// A connection must send its request and take its response within this, or it is closed.
        public var exchangeTimeout: Duration = .seconds(10)
        public init() {}
    }

    public let address: ListenAddress
    private let routes: Routes
    private let limits: Limits
    /// An eventfd the loop polls: `stop()` signals it.
    private let wake = WakeSignal()
    private let stopRequested = Atomic<Bool>(false)
    private let lifecycle = Mutex(Lifecycle())

    private struct Lifecycle {
        var started = false
        var finished = false
        var boundPort: Int?
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    public init(address: ListenAddress, routes: Routes, limits: Limits = Limits()) {
        self.address = address
        self.routes = routes
        self.limits = limits
    }

    /// The port it listens on once started (the one chosen when `address.port` is 0).
    public var port: Int? { lifecycle.withLock { $0.boundPort } }

    /// Binds and listens (so a taken port fails here, not later), then serves on a thread of
    /// its own until `stop()`. Starting twice is a programming error.
    public func start() throws(EndpointServerError) {
        let listener = try listen()
        let port = boundPort(listener)
        lifecycle.withLock { state in
            precondition(!state.started, "EndpointServer started twice")
            state.started = true
            state.boundPort = port
        }
        Thread.detachNewThread { [self] in
            serve(listener: listener)
            let waiters = lifecycle.withLock { state in
                state.finished = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Asks the loop to close the listener and every connection; returns at once (`stopped()`
    /// waits for it). Idempotent; before `start()` it only marks the server finished.
    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        wake.signal()
        let waiters: [CheckedContinuation<Void, Never>] = lifecycle.withLock { state in
            guard !state.started, !state.finished else { return [] }
            state.finished = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the loop has closed its sockets (at once if it never started and was stopped).
    public func stopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = lifecycle.withLock { state in
                if state.finished { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    // MARK: - The socket work, all on the server's thread

    private func listen() throws(EndpointServerError) -> Int32 {
        let domain = address.family == .ipv6 ? AF_INET6 : AF_INET
        let fd = socket(domain, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EndpointServerError(step: "socket", address: address, errno: errno) }
        makeNonBlocking(fd)
        // A restarted relay can take its port back while the old connections sit in TIME_WAIT.
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockaddr { Glibc.bind(fd, $0, $1) }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw EndpointServerError(step: "bind", address: address, errno: code)
        }
        guard Glibc.listen(fd, 128) == 0 else {
            let code = errno
            close(fd)
            throw EndpointServerError(step: "listen", address: address, errno: code)
        }
        return fd
    }

    private func boundPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return address.port }
        return withUnsafePointer(to: &storage) { pointer in
            address.family == .ipv6
                ? pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
                : pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    private func serve(listener: Int32) {
        Thread.current.name = "http-endpoints"
        let clock = ContinuousClock()
        var exchanges: [Exchange] = []
        var polled: [pollfd] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        // After an accept error other than "nothing pending" (out of file descriptors), the
        // listener stays readable: pause accepting briefly instead of spinning on it.
        var acceptPausedUntil: ContinuousClock.Instant?
        defer {
            for exchange in exchanges { close(exchange.fd) }
            close(listener)
        }
        while !stopRequested.load(ordering: .acquiring) {
            let now = clock.now
            if let until = acceptPausedUntil, now >= until { acceptPausedUntil = nil }
            let accepting = exchanges.count < limits.connections && acceptPausedUntil == nil
            polled.removeAll(keepingCapacity: true)
            polled.append(pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0))
            // poll ignores a negative descriptor: the listener is left out while not accepting.
            polled.append(pollfd(fd: accepting ? listener : -1, events: Int16(POLLIN), revents: 0))
            for exchange in exchanges {
                polled.append(pollfd(fd: exchange.fd, events: Int16(exchange.reply == nil ? POLLIN : POLLOUT), revents: 0))
            }
            let wakeAt = (exchanges.map(\.deadline) + (acceptPausedUntil.map { [$0] } ?? [])).min()
            let timeout = wakeAt.map { Int32(clamping: max(0, ($0 - now).wholeMilliseconds + 1)) } ?? -1
            if poll(&polled, nfds_t(polled.count), timeout) < 0 { continue }  // EINTR; nothing else applies here
            if polled[0].revents != 0 { wake.drain() }
            if stopRequested.load(ordering: .acquiring) { break }

            let after = clock.now
            // Backwards, so removing one leaves the indices of those before it (and their poll slots) intact.
            for index in exchanges.indices.reversed() {
                var open = true
                if polled[index + 2].revents != 0 { open = exchanges[index].advance(routes: routes, headLimit: limits.requestHeadBytes, buffer: &buffer) }
                if open && after >= exchanges[index].deadline { open = false }
                if !open {
                    exchanges[index].close()
                    exchanges.remove(at: index)
                }
            }
            if accepting && polled[1].revents != 0 {
                while exchanges.count < limits.connections {
                    let fd = accept(listener, nil, nil)
                    if fd >= 0 {
                        makeNonBlocking(fd)
                        exchanges.append(Exchange(fd: fd, deadline: after + limits.exchangeTimeout))
                        continue
                    }
                    if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED {
                        acceptPausedUntil = after + .milliseconds(100)
                    }
                    break
                }
            }
        }
    }
}

/// Non-blocking, and closed in a child the relay execs (Glibc's module has neither
/// `accept4` nor the SOCK_NONBLOCK socket flags, so fcntl does both).
func makeNonBlocking(_ fd: Int32) {
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
}

/// The listening socket could not be set up (the port is taken, the address is not local, …).
public struct EndpointServerError: Error, CustomStringConvertible {
    public let step: String
    public let address: ListenAddress
    public let errno: Int32

    public var description: String { "\(step) \(address): \(String(cString: strerror(errno))) (errno \(errno))" }
}

private extension Duration {
    var wholeMilliseconds: Int64 { components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000 }
}
