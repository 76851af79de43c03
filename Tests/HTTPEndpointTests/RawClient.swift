import EphemeralServers
#if canImport(Glibc)
import Glibc
#endif

/// A blocking loopback TCP client for driving the server the way odd clients do: silent,
/// slow, in pieces. Every wait is bounded by a receive timeout.
final class RawClient {
    let fd: Int32

    /// nil when nothing accepts the connection (refused).
    init?(port: Int, ipv6: Bool = false, receiveTimeoutSeconds: Int = 5) {
        guard let fd = LoopbackHTTP.connectBlocking(port: port, ipv6: ipv6, timeoutSeconds: receiveTimeoutSeconds) else { return nil }
        self.fd = fd
    }

    deinit { close(fd) }

    func send(_ text: String) {
        _ = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }

    /// Everything until the server closes, or nil if the receive timeout passes first.
    func readToEnd() -> [UInt8]? {
        var all = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { return all }
            if count < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? nil : all }
            all += buffer[0..<count]
        }
    }

    func readTextToEnd() -> String? { readToEnd().map { String(decoding: $0, as: UTF8.self) } }
}
