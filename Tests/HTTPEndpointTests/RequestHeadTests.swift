import HTTPEndpoint
import Testing

@Suite("HTTP request head")
struct RequestHeadTests {
    private func parse(_ text: String, limit: Int = 8_192) -> RequestHead.Parse {
        RequestHead.parse(Array(text.utf8), limit: limit)
    }

    @Test("complete heads: method and path, the query and fragment dropped, absolute-form targets reduced to their path, LF-only line ends",
          arguments: [
              ("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/metrics"),
              ("HEAD /healthz HTTP/1.0\r\n\r\n", "HEAD", "/healthz"),
              ("GET /metrics?name[]=outbox HTTP/1.1\r\nAccept: */*\r\nUser-Agent: Prometheus\r\n\r\n", "GET", "/metrics"),
              ("GET /readyz#top HTTP/1.1\r\n\r\n", "GET", "/readyz"),
              ("GET http://10.0.0.5:9090/metrics HTTP/1.1\r\n\r\n", "GET", "/metrics"),
              ("GET HTTP://host HTTP/1.1\r\n\r\n", "GET", "/"),
              ("POST /metrics HTTP/1.1\nHost: x\n\n", "POST", "/metrics"),
          ])
    func complete(text: String, method: String, path: String) {
        #expect(parse(text) == .complete(RequestHead(method: method, path: path)))
    }

    @Test("every proper prefix of a valid head is incomplete, never malformed or complete")
    func truncatedAtEveryByte() {
        let bytes = Array("GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9187\r\nAccept: text/plain\r\n\r\n".utf8)
        for end in 0..<bytes.count {
            #expect(RequestHead.parse(Array(bytes[..<end]), limit: 8_192) == .incomplete, "prefix of \(end) bytes")
        }
        #expect(RequestHead.parse(bytes, limit: 8_192) == .complete(RequestHead(method: "GET", path: "/metrics")))
    }

    @Test("a wrong request line is refused as soon as the line ends, before the head does",
          arguments: [
              ("GET /metrics\r\n", "the request line is not `METHOD /path HTTP/1.1`"),
              ("GET  /metrics HTTP/1.1\r\n", "the request line is not `METHOD /path HTTP/1.1`"),
              ("\r\n", "the request line is not `METHOD /path HTTP/1.1`"),
              (" /metrics HTTP/1.1\r\n", "the method is not a token"),
              ("GET /metrics HTTP/2.0\r\n", "only HTTP/1.0 and HTTP/1.1 are served"),
              ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "only HTTP/1.0 and HTTP/1.1 are served"),
              ("GET metrics HTTP/1.1\r\n", "the request target is not a path such as /metrics"),
              ("OPTIONS * HTTP/1.1\r\n", "the request target is not a path such as /metrics"),
          ])
    func malformed(text: String, reason: String) {
        #expect(parse(text) == .malformed(reason))
    }

    @Test("a TLS ClientHello (someone scraping with https://) is refused at its first line feed, not left to time out")
    func tlsHandshake() {
        let hello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x0a, 0x20, 0x41]
        #expect(RequestHead.parse(hello, limit: 8_192) == .malformed("the request line is not `METHOD /path HTTP/1.1`"))
    }

    @Test("a head that reaches the limit without ending is too large, whether its first line ended or not")
    func tooLarge() {
        #expect(parse("GET /" + String(repeating: "a", count: 100), limit: 64) == .tooLarge)
        #expect(parse("GET / HTTP/1.1\r\nCookie: " + String(repeating: "a", count: 100), limit: 64) == .tooLarge)
        #expect(parse("GET / HTTP/1.1\r\nCookie: a", limit: 64) == .incomplete)
    }
}
