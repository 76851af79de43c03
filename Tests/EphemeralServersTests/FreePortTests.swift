import EphemeralServers
import Foundation
import Testing

@Suite("Free loopback ports")
struct FreePortTests {
    /// Ports in the kernel's ephemeral range are also given to outgoing connections, so a
    /// port probed free there could be taken by a client before the server binds it.
    @Test("ports come from below the ephemeral range, are never handed out twice, and are free")
    func belowTheEphemeralRange() throws {
        let range = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let ephemeralStart = try #require(range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) })
        try #require(ephemeralStart > 11_000, "this machine's ephemeral range starts at \(ephemeralStart): the fallback applies")
        let ports = (0..<300).map { _ in freeLoopbackPort() }
        #expect(Set(ports).count == ports.count, "a port was handed out twice")
        #expect(ports.allSatisfy { (10_000..<ephemeralStart).contains($0) }, "\(ports.filter { $0 >= ephemeralStart })")
        #expect(ports.allSatisfy { !isLoopbackPortOpen($0) }, "a port handed out is in use")
    }
}
