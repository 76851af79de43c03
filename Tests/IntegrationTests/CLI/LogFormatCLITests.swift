#if canImport(Glibc)
import Glibc
#endif
import EphemeralServers
import Foundation
import PostgresClient
import Testing

/// `--log-format json|text` as an operator runs it: every line a JSON object with the
/// documented fields, and no password (DSN, SASL, librdkafka secret) in any line of either
/// format, even at debug level. Also `--http-host` with an IPv6 address.
@Suite("outbox-relay logs and the HTTP address")
struct LogFormatCLITests {
    static let dsnPassword = "dsn-Pa55-\(UUID().uuidString.prefix(8))"
    static let saslPassword = "sasl-Pa55-\(UUID().uuidString.prefix(8))"
    static let keyPassword = "key-Pa55-\(UUID().uuidString.prefix(8))"

    /// Runs the relay at debug level with secrets in every place they can be given, carries
    /// some rows, stops it with SIGTERM, and returns the exit status and the log.
    func runWithSecrets(_ ctx: TestContext, format: String, extra: [String] = [],
                        get: @escaping (Int, String) async -> (status: Int, body: String)? = { port, path in
                            (await LoopbackHTTP.get(port: port, path: path)).map { ($0.status, $0.body) }
                        }) async throws -> (status: Int32?, output: String) {
        let db = try await ctx.migrated()
        let url = ctx.databaseURL.replacingOccurrences(of: "postgres://postgres@", with: "postgres://postgres:\(Self.dsnPassword)@")
        var environment = ProcessInfo.processInfo.environment
        environment["OUTBOX_RELAY_KAFKA_SASL_USERNAME"] = "relay"
        environment["OUTBOX_RELAY_KAFKA_SASL_PASSWORD"] = Self.saslPassword
        let port = freeLoopbackPort()
        let log = NSTemporaryDirectory() + "relay-\(ctx.databaseName)-log-\(format).log"
        let relay = try ChildProcess([try relayBinary(), "run", "--database-url", url, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                                      "--slot", ctx.slotName, "--http-port", String(port), "--log-level", "debug", "--log-format", format,
                                      "--set", "kafka-properties=ssl.key.password=\(Self.keyPassword)",
                                      "--set", "spill-dir=\(NSTemporaryDirectory())"] + extra,
                                     outputPath: log, environment: environment)
        let ready = await eventually { await get(port, "/readyz")?.status == 200 }
        #expect(ready, "\(relay.output.suffix(2_000))")
        try await insertOutboxRows(db, transactions: 5, rowsPerTransaction: 4)
        #expect(await eventually {
            await get(port, "/metrics").flatMap { LoopbackHTTP.sample("outbox_relay_events_published_total", in: $0.body) } == 20
        })
        let status = await relay.terminate(timeout: .seconds(30))
        return (status, relay.output)
    }

    func assertNoSecret(_ output: String) {
        for secret in [Self.dsnPassword, Self.saslPassword, Self.keyPassword] {
            let leaks = output.split(separator: "\n").filter { $0.contains(secret) }
            #expect(leaks.isEmpty, "a secret reached the log:\n\(leaks.prefix(3).joined(separator: "\n"))")
        }
    }

    @Test("--log-format json: every line is one object with time, level, component, message and metadata; no secret; SIGTERM exits 0")
    func jsonLogs() async throws {
        try await withTestContext { ctx in
            let (status, output) = try await runWithSecrets(ctx, format: "json")
            #expect(status == 0, "\(output.suffix(2_000))")
            let lines = output.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(lines.count > 10, "expected debug-level lines, got \(lines.count)")
            var levels: Set<String> = [], components: Set<String> = []
            for line in lines {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    Issue.record("not a JSON object: \(line.prefix(300))")
                    continue
                }
                #expect(Set(object.keys) == ["time", "level", "component", "message", "metadata"], "\(line.prefix(300))")
                #expect((object["time"] as? String)?.hasSuffix("Z") == true)
                #expect(object["metadata"] is [String: Any], "\(line.prefix(300))")
                if let level = object["level"] as? String { levels.insert(level) }
                if let component = object["component"] as? String { components.insert(component) }
            }
            #expect(levels.isSubset(of: ["trace", "debug", "info", "notice", "warning", "error", "critical"]) && levels.contains("info"), "\(levels)")
            #expect(components.contains("outbox-relay"), "\(components)")
            let start = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .first { $0["message"] as? String == "starting relay" }
            let config = (start?["metadata"] as? [String: Any])?["config"] as? [String: String]
            #expect(config?["log-format"] == "json (command-line flag)", "the resolved configuration is an object: \(String(describing: config))")
            #expect(config?["kafka-sasl-password"] == "<redacted> (environment variable OUTBOX_RELAY_KAFKA_SASL_PASSWORD)")
            assertNoSecret(output)
        }
    }

    @Test("--log-format text at debug level: no secret in any line; --http-host ::1 serves the endpoints over IPv6")
    func textLogsAndIPv6() async throws {
        try await withTestContext { ctx in
            // Readiness and metrics are read over IPv6 ([::1]:port) only.
            let (status, output) = try await runWithSecrets(ctx, format: "text", extra: ["--http-host", "::1"]) { port, path in
                await withCheckedContinuation { continuation in
                    Thread.detachNewThread { continuation.resume(returning: ipv6Get(port: port, path: path)) }
                }
            }
            #expect(status == 0, "\(output.suffix(2_000))")
            #expect(output.contains("starting relay"))
            assertNoSecret(output)
        }
    }
}

/// A blocking HTTP/1.0 GET to [::1]:port: status and body, or nil. Run it on a thread of
/// its own, not on the cooperative pool.
func ipv6Get(port: Int, path: String) -> (status: Int, body: String)? {
    let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_port = in_port_t(UInt16(port).bigEndian)
    address.sin6_addr = in6addr_loopback
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
    }
    guard connected == 0 else { return nil }
    let request = "GET \(path) HTTP/1.0\r\nHost: [::1]\r\n\r\n"
    guard request.withCString({ send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }) > 0 else { return nil }
    var response = [UInt8](), buffer = [UInt8](repeating: 0, count: 4_096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let headerEnd = text.range(of: "\r\n\r\n"),
          let status = text[..<headerEnd.lowerBound].split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
    return (status, String(text[headerEnd.upperBound...]))
}
