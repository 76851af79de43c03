#if canImport(Glibc)
import Glibc
#endif

/// Where the endpoints listen: an IPv4 or IPv6 address literal and a port (0: any free one).
/// Host names are refused, so a relay never binds somewhere a resolver decided.
public struct ListenAddress: Equatable, Sendable, CustomStringConvertible {
    public enum Family: Equatable, Sendable { case ipv4, ipv6 }

    public let family: Family
    /// The literal without brackets.
    public let host: String
    public let port: Int

    /// nil unless `host` is an IPv4 or IPv6 literal (an IPv6 one may come bracketed, as in a
    /// URL: `[::1]`) and the port is 0...65535.
    public init?(host: String, port: Int) {
        let literal = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        guard let family = Self.family(of: literal), (0...65_535).contains(port) else { return nil }
        self.family = family
        self.host = literal
        self.port = port
    }

    public static func family(of literal: String) -> Family? {
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 { return .ipv4 }
        if inet_pton(AF_INET6, literal, &v6) == 1 { return .ipv6 }
        return nil
    }

    public var description: String { family == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Calls `body` with the socket address and its length.
    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        let networkPort = in_port_t(UInt16(port).bigEndian)
        switch family {
        case .ipv4:
            var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: networkPort, sin_addr: in_addr(), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
            _ = inet_pton(AF_INET, host, &address.sin_addr)
            return Self.withGeneric(&address, body)
        case .ipv6:
            var address = sockaddr_in6(sin6_family: sa_family_t(AF_INET6), sin6_port: networkPort, sin6_flowinfo: 0, sin6_addr: in6_addr(), sin6_scope_id: 0)
            _ = inet_pton(AF_INET6, host, &address.sin6_addr)
            return Self.withGeneric(&address, body)
        }
    }

    /// A family's address seen as the generic `sockaddr` the socket calls take, with its length.
    private static func withGeneric<Address, T>(_ address: inout Address, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<Address>.size)) }
        }
    }
}
