import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An unused loopback TCP port for a server to bind, never the same one twice in a
/// process.
///
/// Chosen below the kernel's ephemeral range (`ip_local_port_range`, 32768-60999 by
/// default): ports in that range are also handed to outgoing connections, so a port found
/// free there could be some client's local port by the time the server binds it (a CI run
/// lost a test that way: the relay's HTTP port "already in use", with hundreds of client
/// connections open around it). Outside the range only another server can take it. There is
/// still a window between the probe and the server's bind, so a server start retries on a
/// bind failure where it can.
public func freeLoopbackPort() -> Int {
    let ceiling = (ephemeralRangeStart() ?? 32_768) - 1
    if ceiling > 11_000 {
        for _ in 0..<2_000 {
            let port = Int.random(in: 10_000...ceiling)
            guard handedOutPorts.withLock({ $0.insert(port).inserted }) else { continue }
            if bindProbe(port: port) != nil { return port }
        }
    }
    // A range that leaves no room below it: the kernel's choice, as before.
    while true {
        guard let port = bindProbe(port: 0) else { preconditionFailure("could not bind a probe socket on 127.0.0.1: errno \(errno)") }
        if handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
    }
}

/// Ports `freeLoopbackPort` returned in this process.
private let handedOutPorts = Mutex<Set<Int>>([])

/// The first port of the kernel's ephemeral range, or nil where it cannot be read.
private func ephemeralRangeStart() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) else { return nil }
    return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) }
}

/// Binds 127.0.0.1:`port` (0: any) and closes it again; the port bound, or nil.
private func bindProbe(port: Int) -> Int? {
    guard let (fd, bound) = boundLoopbackSocket(port: port) else { return nil }
    close(fd)
    return bound
}

/// A TCP socket bound to 127.0.0.1:`port` (0: the kernel's choice) and the port it got, or
/// nil when the bind fails (errno says why).
private func boundLoopbackSocket(port: Int) -> (fd: Int32, port: Int)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    precondition(fd >= 0, "socket() failed: errno \(errno)")
    var addr = loopbackAddress(port: port)
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else {
        let code = errno
        close(fd)
        errno = code
        return nil
    }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

private func loopbackAddress(port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return addr
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
public func isLoopbackPortOpen(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = loopbackAddress(port: port)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// A loopback TCP port that accepts connections (the kernel completes the handshake) and
/// never answers: a server that hangs, which only a client's own timeout ends. Closed
/// when released.
public final class SilentLoopbackListener: Sendable {
    public let port: Int
    private let fd: Int32

    public init() {
        guard let (fd, port) = boundLoopbackSocket(port: 0), listen(fd, 16) == 0 else {
            preconditionFailure("could not listen on 127.0.0.1: errno \(errno)")
        }
        self.fd = fd
        self.port = port
    }

    deinit { close(fd) }
}
