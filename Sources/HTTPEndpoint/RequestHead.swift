/// The request line of an HTTP/1.x request: all that the endpoints need, since they take no
/// body, no query and no header.
public struct RequestHead: Equatable, Sendable {
    public var method: String
    /// The path, without a query string.
    public var path: String

    public init(method: String, path: String) {
        self.method = method
        self.path = path
    }

    public enum Parse: Equatable, Sendable {
        /// The head has not ended yet (no empty line) and nothing seen so far is wrong.
        case incomplete
        case complete(RequestHead)
        /// Not an HTTP/1.x request; the reason goes into the 400 response.
        case malformed(String)
        /// The head grew past the limit without ending.
        case tooLarge
    }

    /// Parses what a client has sent so far. The request line is judged as soon as it is
    /// complete, so a client speaking something else (TLS, HTTP/2) is answered at once
    /// instead of at the timeout; the head ends at the first empty line (CRLF CRLF, or LF LF
    /// from lenient clients).
    public static func parse(_ bytes: [UInt8], limit: Int) -> Parse {
        guard let lineEnd = bytes.firstIndex(of: newline) else {
            return bytes.count >= limit ? .tooLarge : .incomplete
        }
        let line = bytes[..<lineEnd].last == carriageReturn ? bytes[..<(lineEnd - 1)] : bytes[..<lineEnd]
        let head: RequestHead
        switch requestLine(line) {
        case .success(let parsed): head = parsed
        case .failure(let reason): return .malformed(reason.text)
        }
        guard headEnds(in: bytes, after: lineEnd) else {
            return bytes.count >= limit ? .tooLarge : .incomplete
        }
        return .complete(head)
    }

    private struct Reason: Error { let text: String }

    private static func requestLine(_ line: ArraySlice<UInt8>) -> Result<RequestHead, Reason> {
        let parts = line.split(separator: space, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(Reason(text: "the request line is not `METHOD /path HTTP/1.1`")) }
        let method = String(decoding: parts[0], as: UTF8.self), target = String(decoding: parts[1], as: UTF8.self)
        guard !method.isEmpty, method.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            return .failure(Reason(text: "the method is not a token"))
        }
        guard String(decoding: parts[2], as: UTF8.self).hasPrefix("HTTP/1.") else {
            return .failure(Reason(text: "only HTTP/1.0 and HTTP/1.1 are served"))
        }
        guard let path = originPath(target) else {
            return .failure(Reason(text: "the request target is not a path such as /metrics"))
        }
        return .success(RequestHead(method: method, path: path))
    }

    /// The path of an origin-form target (`/metrics?x=1`) or of an absolute-form one
    /// (`http://host:port/metrics`, which proxies send).
    private static func originPath(_ target: String) -> String? {
        var rest = Substring(target)
        for scheme in ["http://", "https://"] where rest.lowercased().hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
            rest = rest.firstIndex(of: "/").map { rest[$0...] } ?? "/"
        }
        guard rest.hasPrefix("/") else { return nil }
        return String(rest.prefix { $0 != "?" && $0 != "#" })
    }

    private static func headEnds(in bytes: [UInt8], after lineEnd: Int) -> Bool {
        // Each further line ends with LF; the head ends at an empty one (CR LF or a bare LF).
        var lineStart = lineEnd + 1
        while let end = bytes[lineStart...].firstIndex(of: newline) {
            if end == lineStart || (end == lineStart + 1 && bytes[lineStart] == carriageReturn) { return true }
            lineStart = end + 1
        }
        return false
    }

    private static let newline = UInt8(ascii: "\n"), carriageReturn = UInt8(ascii: "\r"), space = UInt8(ascii: " ")
}
