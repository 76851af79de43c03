#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.0 GET against 127.0.0.1 (or [::1]), for tests and the bench to read a relay's
/// /metrics, /healthz and /readyz without pulling an HTTP client into them. The socket
/// calls block, so they run on a thread of their own, never on the cooperative pool.
public enum LoopbackHTTP {
    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    /// nil when nothing answers on the port, or the answer is not HTTP. `ipv6` asks [::1]
    /// instead of 127.0.0.1 (a server bound to an IPv6 address).
    public static func get(port: Int, path: String, ipv6: Bool = false, timeoutSeconds: Int = 5) async -> Response? {
        (try? await offPool { getBlocking(port: port, path: path, ipv6: ipv6, timeoutSeconds: timeoutSeconds) }) ?? nil
    }

    static func getBlocking(port: Int, path: String, ipv6: Bool, timeoutSeconds: Int) -> Response? {
        guard let fd = connectBlocking(port: port, ipv6: ipv6, timeoutSeconds: timeoutSeconds) else { return nil }
        defer { close(fd) }
        let request = "GET \(path) HTTP/1.0\r\nHost: \(ipv6 ? "[::1]" : "127.0.0.1")\r\n\r\n"
        let sent = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        guard sent > 0 else { return nil }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let headerEnd = text.range(of: "\r\n\r\n"),
              let statusText = text[..<headerEnd.lowerBound].split(separator: " ").dropFirst().first,
              let status = Int(statusText) else { return nil }
        return Response(status: status, body: String(text[headerEnd.upperBound...]))
    }

    /// A blocking TCP socket connected to 127.0.0.1 (or [::1]) on `port`, whose receives time
    /// out after `timeoutSeconds`; nil when the connection is refused. The caller closes it.
    public static func connectBlocking(port: Int, ipv6: Bool = false, timeoutSeconds: Int = 5) -> Int32? {
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected: Int32
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            address.sin6_addr = in6addr_loopback
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// The value of one un-labelled sample (`name value`) in Prometheus text, or the sum of
    /// its labelled series (`name{…} value`).
    public static func sample(_ name: String, in metrics: String) -> Double? {
        var total: Double?
        for line in metrics.split(separator: "\n") where line.hasPrefix(name + " ") || line.hasPrefix(name + "{") {
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { total = (total ?? 0) + value }
        }
        return total
    }
}
