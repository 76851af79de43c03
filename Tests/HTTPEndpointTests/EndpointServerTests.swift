import EphemeralServers
import HTTPEndpoint
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The server over real loopback sockets.
@Suite("HTTP endpoint server")
struct EndpointServerTests {
    private static func routes(body: [UInt8] = Array("ok\n".utf8)) -> Routes {
        var routes = Routes()
        routes.get("/metrics") { Response(status: 200, contentType: "text/plain; version=0.0.4", body: body) }
        return routes
    }

    private static func started(host: String = "127.0.0.1", port: Int = 0, routes: Routes = routes(),
                                limits: EndpointServer.Limits = .init()) throws -> (EndpointServer, Int) {
        let server = EndpointServer(address: try #require(ListenAddress(host: host, port: port)), routes: routes, limits: limits)
        try server.start()
        return (server, try #require(server.port))
    }

    @Test("serves GET and HEAD on IPv4 and IPv6 literals, on the port it chose for port 0")
    func servesBothFamilies() async throws {
        for (host, ipv6) in [("127.0.0.1", false), ("[::1]", true)] {
            let (server, port) = try Self.started(host: host)
            #expect(port > 0)
            let response = await LoopbackHTTP.get(port: port, path: "/metrics", ipv6: ipv6)
            #expect(response?.status == 200 && response?.body == "ok\n", "\(host): \(String(describing: response))")
            let head = try #require(RawClient(port: port, ipv6: ipv6))
            head.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            let text = try #require(head.readTextToEnd())
            #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n") && text.contains("Content-Length: 3\r\n") && text.hasSuffix("\r\n\r\n"), "\(text)")
            server.stop()
            await server.stopped()
        }
    }

    @Test("a silent client holds only its own connection: others are served meanwhile, and it is closed at the exchange timeout")
    func silentClient() async throws {
        var limits = EndpointServer.Limits()
        limits.exchangeTimeout = .milliseconds(400)
        let (server, port) = try Self.started(limits: limits)
        defer { server.stop() }
        let silent = try #require(RawClient(port: port))
        for _ in 0..<3 {
            #expect(await LoopbackHTTP.get(port: port, path: "/metrics")?.status == 200)
        }
        let opened = ContinuousClock.now
        #expect(silent.readToEnd() == [], "the server closes the silent connection instead of leaving it open")
        #expect(ContinuousClock.now - opened < .seconds(4))
    }

    @Test("a request that arrives a few bytes at a time is answered once its head ends")
    func requestInPieces() async throws {
        let (server, port) = try Self.started()
        defer { server.stop() }
        let client = try #require(RawClient(port: port))
        for piece in ["GE", "T /met", "rics HTTP/1.1\r", "\nHost: 127.0.0.1\r\n", "\r\n"] {
            client.send(piece)
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(client.readTextToEnd()?.hasSuffix("\r\n\r\nok\n") == true)
    }

    @Test("with every connection slot taken, a new client waits in the backlog and is served when one frees up, not refused")
    func connectionLimit() async throws {
        var limits = EndpointServer.Limits()
        limits.connections = 2
        limits.exchangeTimeout = .milliseconds(500)
        let (server, port) = try Self.started(limits: limits)
        defer { server.stop() }
        let holders = [try #require(RawClient(port: port)), try #require(RawClient(port: port))]
        try await Task.sleep(for: .milliseconds(100))
        let response = await LoopbackHTTP.get(port: port, path: "/metrics")
        #expect(response?.status == 200)
        #expect(holders.allSatisfy { $0.readToEnd() == [] })
    }

    @Test("a 4 MiB response reaches a client that starts reading late, whole")
    func largeResponseToSlowReader() async throws {
        let body = (0..<4 << 20).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let (server, port) = try Self.started(routes: Self.routes(body: body))
        defer { server.stop() }
        let client = try #require(RawClient(port: port))
        client.send("GET /metrics HTTP/1.1\r\n\r\n")
        try await Task.sleep(for: .milliseconds(300))
        let received = try #require(client.readToEnd())
        let headEnd = try #require(received.indices.first { received[$0...].starts(with: Array("\r\n\r\n".utf8)) })
        #expect(Array(received[(headEnd + 4)...]) == body)
    }

    @Test("a taken port fails start() with the address and the cause")
    func portTaken() throws {
        let (first, port) = try Self.started()
        defer { first.stop() }
        let second = EndpointServer(address: try #require(ListenAddress(host: "127.0.0.1", port: port)), routes: Self.routes())
        #expect {
            try second.start()
        } throws: { error in
            let failure = error as? EndpointServerError
            return failure?.errno == EADDRINUSE && failure?.description == "bind 127.0.0.1:\(port): Address already in use (errno \(EADDRINUSE))"
        }
    }

    @Test("stop() closes the open connections and the listener; stopped() returns once they are closed; stopping twice is harmless")
    func stopClosesEverything() async throws {
        // Not port 0: the other tests bind port 0 in parallel, and the kernel may give one of them
        // the port this server just freed (a CI run saw "nothing listens" fail that way). Below
        // the ephemeral range no client's own port can be it either, and freeLoopbackPort()
        // never hands the same port to another server of this process.
        let (server, port) = try Self.started(port: freeLoopbackPort())
        let idle = try #require(RawClient(port: port))
        server.stop()
        await server.stopped()
        #expect(idle.readToEnd() == [], "an open connection is closed")
        #expect(RawClient(port: port) == nil, "nothing listens any more")
        server.stop()
        await server.stopped()
    }

    @Test("a server stopped before it started reports stopped at once")
    func stopBeforeStart() async throws {
        let server = EndpointServer(address: try #require(ListenAddress(host: "127.0.0.1", port: 0)), routes: Self.routes())
        server.stop()
        await server.stopped()
        #expect(server.port == nil)
    }

    @Test("listen addresses: IPv4 and IPv6 literals (bracketed or not) and ports 0-65535; host names and other ports refused",
          arguments: [("0.0.0.0", 9187, "0.0.0.0:9187"), ("::", 0, "[::]:0"), ("[::1]", 65_535, "[::1]:65535"), ("localhost", 80, nil),
                      ("127.0.0.1", 65_536, nil), ("127.0.0.1", -1, nil), ("", 80, nil)])
    func listenAddresses(host: String, port: Int, expected: String?) {
        #expect(ListenAddress(host: host, port: port)?.description == expected)
    }
}
