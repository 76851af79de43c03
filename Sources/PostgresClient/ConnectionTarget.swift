/// Parses just enough of a libpq connection string or URL to describe where it points,
/// so errors and logs can say `host:port/db as user` without ever showing a password.
public struct ConnectionTarget: Sendable, CustomStringConvertible, Equatable {
    public var host: String
    public var port: String
    public var database: String
    public var user: String?

    public init(host: String, port: String, database: String, user: String?) {
        self.host = host; self.port = port; self.database = database; self.user = user
    }

    /// Understands `postgres://user:pass@host:port/db?opts`, `postgresql://…`, and
    /// `key=value` strings. Unknown parts default the way libpq does.
    public init(parsing dsn: String) {
        var host = "localhost", port = "5432", database = "", user: String? = nil
        if dsn.hasPrefix("postgres://") || dsn.hasPrefix("postgresql://") {
            var rest = Substring(dsn.drop(while: { $0 != "/" }).dropFirst(2))
            if let q = rest.firstIndex(of: "?") {
                for pair in rest[rest.index(after: q)...].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    if kv.count == 2 {
                        switch kv[0] { case "host": host = kv[1]; case "port": port = kv[1]
                        case "dbname": database = kv[1]; case "user": user = kv[1]; default: break }
                    }
                }
                rest = rest[..<q]
            }
            if let at = rest.lastIndex(of: "@") {
                let userinfo = rest[..<at]
                user = String(userinfo.split(separator: ":", maxSplits: 1).first ?? "").removingPercentEncodingLite
                rest = rest[rest.index(after: at)...]
            }
            let hostPart: Substring
            if let slash = rest.firstIndex(of: "/") {
                hostPart = rest[..<slash]
                let db = rest[rest.index(after: slash)...]
                if !db.isEmpty { database = String(db).removingPercentEncodingLite }
            } else { hostPart = rest }
            if let colon = hostPart.lastIndex(of: ":"), !hostPart.hasSuffix("]") {
                if !hostPart[..<colon].isEmpty { host = String(hostPart[..<colon]) }
                port = String(hostPart[hostPart.index(after: colon)...])
            } else if !hostPart.isEmpty { host = String(hostPart) }
        } else {
            for pair in dsn.split(separator: " ") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { continue }
                switch kv[0] { case "host", "hostaddr": host = kv[1]; case "port": port = kv[1]
                case "dbname": database = kv[1]; case "user": user = kv[1]; default: break }
            }
        }
        if database.isEmpty { database = user ?? "postgres" }
        self.init(host: host, port: port, database: database, user: user)
    }

    public var description: String {
        "\(host):\(port)/\(database)" + (user.map { " as \($0)" } ?? "")
    }

    /// The DSN with any password replaced by `***`, for printing configuration.
    public static func redact(_ dsn: String) -> String {
        if dsn.hasPrefix("postgres://") || dsn.hasPrefix("postgresql://") {
            let afterScheme = dsn.index(dsn.firstIndex(of: "/")!, offsetBy: 2)
            let authorityEnd = dsn[afterScheme...].firstIndex(where: { $0 == "/" || $0 == "?" }) ?? dsn.endIndex
            guard let at = dsn[afterScheme..<authorityEnd].lastIndex(of: "@") else { return redactQueryPassword(dsn) }
            guard let colon = dsn[afterScheme..<at].firstIndex(of: ":") else { return redactQueryPassword(dsn) }
            return redactQueryPassword(String(dsn[..<colon]) + ":***" + String(dsn[at...]))
        }
        return dsn.split(separator: " ").map { $0.hasPrefix("password=") ? "password=***" : String($0) }
            .joined(separator: " ")
    }

    private static func redactQueryPassword(_ dsn: String) -> String {
        guard let q = dsn.firstIndex(of: "?") else { return dsn }
        let params = dsn[dsn.index(after: q)...].split(separator: "&").map {
            $0.hasPrefix("password=") ? "password=***" : String($0)
        }
        return String(dsn[...q]) + params.joined(separator: "&")
    }
}

extension String {
    /// Minimal %XX decoding for user and database names in URLs (no Foundation needed).
    var removingPercentEncodingLite: String {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        var it = utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%"), let h = it.next(), let l = it.next(),
               let v = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) {
                bytes.append(v)
            } else { bytes.append(b) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
