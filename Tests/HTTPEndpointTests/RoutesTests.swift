import HTTPEndpoint
import Testing

@Suite("HTTP routes")
struct RoutesTests {
    private let routes: Routes = {
        var routes = Routes()
        routes.get("/healthz") { Response(status: 200, text: "streaming\n") }
        routes.get("/readyz") { Response(status: 503, text: "not ready (connecting)\n") }
        return routes
    }()

    private func answer(_ request: String) -> String? {
        routes.answer(Array(request.utf8), headLimit: 256).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("GET answers with the handler's status and body, its length, and Connection: close")
    func get() {
        #expect(answer("GET /healthz HTTP/1.1\r\n\r\n")
                == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\nstreaming\n")
        #expect(answer("GET /readyz HTTP/1.1\r\n\r\n")?.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n") == true)
    }

    @Test("HEAD sends the GET head, Content-Length included, and no body")
    func head() {
        #expect(answer("HEAD /healthz HTTP/1.1\r\n\r\n")
                == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
    }

    @Test("another method on a served path: 405 with Allow; an unknown path: 404 naming the served ones")
    func refusals() throws {
        let post = try #require(answer("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
        #expect(post.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n") && post.contains("\r\nAllow: GET, HEAD\r\n"), "\(post)")
        let missing = try #require(answer("GET /metrics HTTP/1.1\r\n\r\n"))
        #expect(missing.hasPrefix("HTTP/1.1 404 Not Found\r\n") && missing.hasSuffix("not found: /metrics (served: /healthz, /readyz)\n"), "\(missing)")
    }

    @Test("nothing until the head ends; 400 naming the problem for a wrong request line; 431 past the limit")
    func incompleteAndBad() throws {
        #expect(answer("GET /healthz HTTP/1.1\r\nHost: x\r\n") == nil)
        let bad = try #require(answer("GET /healthz HTTP/2.0\r\n"))
        #expect(bad.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && bad.hasSuffix("bad request: only HTTP/1.0 and HTTP/1.1 are served\n"), "\(bad)")
        let large = try #require(answer("GET /healthz HTTP/1.1\r\nCookie: " + String(repeating: "c", count: 300)))
        #expect(large.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n") && large.hasSuffix("the request head is over 256 bytes\n"), "\(large)")
    }
}
