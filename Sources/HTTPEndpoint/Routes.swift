/// GET endpoints by path. HEAD is answered like GET without the body; any other method on
/// a known path gets 405 with `Allow`, an unknown path 404.
public struct Routes: Sendable {
    public typealias Handler = @Sendable () -> Response
    private var handlers: [String: Handler] = [:]

    public init() {}

    public mutating func get(_ path: String, _ handler: @escaping Handler) {
        handlers[path] = handler
    }

    public var paths: [String] { handlers.keys.sorted() }

    /// The bytes to send for a complete request head.
    public func respond(to head: RequestHead) -> [UInt8] {
        guard let handler = handlers[head.path] else {
            return Response(status: 404, text: "not found: \(head.path) (served: \(paths.joined(separator: ", ")))\n").encoded()
        }
        switch head.method {
        case "GET": return handler().encoded()
        case "HEAD": return handler().encoded(includeBody: false)
        default:
            return Response(status: 405, body: Array("\(head.method) is not served on \(head.path); use GET\n".utf8),
                            headers: [.init("Allow", "GET, HEAD")]).encoded()
        }
    }

    /// The answer to what a client has sent so far, or nil while its request head is incomplete.
    public func answer(_ received: [UInt8], headLimit: Int) -> [UInt8]? {
        switch RequestHead.parse(received, limit: headLimit) {
        case .incomplete: nil
        case .complete(let head): respond(to: head)
        case .malformed(let reason): Response(status: 400, text: "bad request: \(reason)\n").encoded()
        case .tooLarge: Response(status: 431, text: "the request head is over \(headLimit) bytes\n").encoded()
        }
    }
}
