/// An HTTP/1.1 response, always followed by closing the connection: scrapers and probes
/// send one request per connection or reconnect without fuss, and a server that never
/// keeps a connection open cannot be held by idle ones.
public struct Response: Equatable, Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    /// Extra header lines, e.g. `Allow` on a 405.
    public var headers: [Header]

    public struct Header: Equatable, Sendable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) { self.name = name; self.value = value }
    }

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8], headers: [Header] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: Int, text: String) {
        self.init(status: status, body: Array(text.utf8))
    }

    /// Status line, headers and (unless answering a HEAD) the body.
    public func encoded(includeBody: Bool = true) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for header in headers { head += "\(header.name): \(header.value)\r\n" }
        head += "\r\n"
        return includeBody ? Array(head.utf8) + body : Array(head.utf8)
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 431: "Request Header Fields Too Large"
        case 503: "Service Unavailable"
        default: "Status \(status)"
        }
    }
}
