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
    /// `key=value` strings, tokenised as libpq does (quotes, backslash escapes, blanks
    /// around `=`), so that no part of a password can land in a field. Unknown parts
    /// default the way libpq does; a string that is neither is a database name.
    public init(parsing dsn: String) {
        var host = "localhost", port = "5432", database = "", user: String? = nil
        if let url = DSNURL(dsn) {
            user = url.user.map { String($0).removingPercentEncodingLite }
            let netloc = url.netloc
            if let slash = netloc.firstIndex(of: "/") {
                let db = netloc[netloc.index(after: slash)...]
                if !db.isEmpty { database = String(db).removingPercentEncodingLite }
            }
            let hostPart = netloc.prefix { $0 != "/" }
            if let colon = hostPart.lastIndex(of: ":"), !hostPart.hasSuffix("]") {
                if !hostPart[..<colon].isEmpty { host = String(hostPart[..<colon]) }
                port = String(hostPart[hostPart.index(after: colon)...])
            } else if !hostPart.isEmpty { host = String(hostPart) }
            for parameter in url.parameters ?? [] {
                guard let (key, value) = DSNURL.split(parameter) else { continue }
                switch key { case "host": host = value; case "port": port = value
                case "dbname": database = value; case "user": user = value; default: break }
            }
        } else if !dsn.contains("=") {
            database = dsn
        } else {
            for pair in ConnInfo(dsn).pairs {
                switch pair.key { case "host", "hostaddr": host = pair.value; case "port": port = pair.value
                case "dbname": database = pair.value; case "user": user = pair.value; default: break }
            }
        }
        if database.isEmpty { database = user ?? "postgres" }
        self.init(host: host, port: port, database: database, user: user)
    }

    public var description: String {
        "\(host):\(port)/\(database)" + (user.map { " as \($0)" } ?? "")
    }

    /// The DSN with every password and sslpassword value replaced by `***`, for printing
    /// configuration. A part libpq would refuse (an unterminated quote, a word without
    /// `=`) is replaced from there on, since it may hold the rest of a secret.
    public static func redact(_ dsn: String) -> String {
        if let url = DSNURL(dsn) {
            var out = String(url.scheme)
            if let user = url.user { out += user + (url.hasPassword ? ":***@" : "@") }
            out += url.netloc
            if let parameters = url.parameters {
                out += "?" + parameters.map { parameter -> String in
                    guard let eq = parameter.firstIndex(of: "=") else { return parameter.isEmpty ? "" : "***" }
                    let key = String(parameter[..<eq])
                    return isSecret(key.removingPercentEncodingLite) ? key + "=***" : String(parameter)
                }.joined(separator: "&")
            }
            return out
        }
        guard dsn.contains("=") else { return dsn }  // a bare database name
        let info = ConnInfo(dsn)
        var out: [UInt8] = []
        var copied = 0
        for pair in info.pairs where isSecret(pair.key) {
            out += info.bytes[copied..<pair.valueRange.lowerBound]
            out += Array("***".utf8)
            copied = pair.valueRange.upperBound
        }
        if let bad = info.malformedAt {
            out += info.bytes[copied..<bad]
            out += Array("***".utf8)
        } else {
            out += info.bytes[copied...]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `password`, `sslpassword`, and any other keyword about a password (case-insensitive,
    /// to be safe: libpq itself only knows the lower-case names).
    static func isSecret(_ keyword: String) -> Bool {
        keyword.lowercased().contains("password")
    }
}

/// A `postgres://` or `postgresql://` URL split the way libpq splits it. The user info
/// runs to an `@` before the first `/` (libpq takes the first such `@`; this takes the
/// last, so a password holding a raw `@` or `?` is still entirely password).
struct DSNURL {
    let scheme: Substring
    /// Up to the first `:` of the user info; nil without user info.
    let user: Substring?
    let hasPassword: Bool
    /// Hosts, ports and the database path, up to `?`.
    let netloc: Substring
    /// The `&`-separated query parameters, raw; nil without a `?`.
    let parameters: [Substring]?

    init?(_ dsn: String) {
        guard let prefix = ["postgresql://", "postgres://"].first(where: { dsn.hasPrefix($0) }) else { return nil }
        scheme = dsn.prefix(prefix.count)
        var rest = dsn.dropFirst(prefix.count)
        let beforePath = rest.prefix { $0 != "/" }
        if let at = beforePath.lastIndex(of: "@") {
            let info = rest[..<at]
            if let colon = info.firstIndex(of: ":") {
                user = info[..<colon]
                hasPassword = true
            } else {
                user = info
                hasPassword = false
            }
            rest = rest[rest.index(after: at)...]
        } else {
            user = nil
            hasPassword = false
        }
        if let q = rest.firstIndex(of: "?") {
            netloc = rest[..<q]
            parameters = rest[rest.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false)
        } else {
            netloc = rest
            parameters = nil
        }
    }

    /// `key=value`, both percent-decoded; nil without `=`.
    static func split(_ parameter: Substring) -> (String, String)? {
        guard let eq = parameter.firstIndex(of: "=") else { return nil }
        return (String(parameter[..<eq]).removingPercentEncodingLite,
                String(parameter[parameter.index(after: eq)...]).removingPercentEncodingLite)
    }
}

/// A libpq `key=value` connection string, tokenised as libpq's `conninfo_parse` does:
/// blanks may surround `=`; a value is either unquoted (ends at a blank) or single-quoted;
/// a backslash escapes the next character in both. Works on UTF-8 bytes: every delimiter
/// is ASCII, and multi-byte characters never contain ASCII bytes.
struct ConnInfo {
    struct Pair {
        var key: String
        /// Unquoted and unescaped.
        var value: String
        /// Where the raw value (quotes included) sits in `bytes`.
        var valueRange: Range<Int>
    }

    let bytes: [UInt8]
    private(set) var pairs: [Pair] = []
    /// Where libpq would stop with an error: a word without `=`, or an unterminated quote.
    private(set) var malformedAt: Int?

    init(_ dsn: String) {
        bytes = Array(dsn.utf8)
        let quote = UInt8(ascii: "'"), backslash = UInt8(ascii: "\\"), equals = UInt8(ascii: "=")
        func isBlank(_ c: UInt8) -> Bool { c == 0x20 || (0x09...0x0D).contains(c) }
        var i = 0
        while i < bytes.count {
            if isBlank(bytes[i]) { i += 1; continue }
            let keyStart = i
            while i < bytes.count, bytes[i] != equals, !isBlank(bytes[i]) { i += 1 }
            let key = String(decoding: bytes[keyStart..<i], as: UTF8.self)
            while i < bytes.count, isBlank(bytes[i]) { i += 1 }
            guard i < bytes.count, bytes[i] == equals else { malformedAt = keyStart; return }
            i += 1
            while i < bytes.count, isBlank(bytes[i]) { i += 1 }
            let valueStart = i
            var value: [UInt8] = []
            if i < bytes.count, bytes[i] == quote {
                i += 1
                var closed = false
                while i < bytes.count {
                    if bytes[i] == backslash {
                        i += 1
                        if i < bytes.count { value.append(bytes[i]); i += 1 }
                    } else if bytes[i] == quote {
                        i += 1
                        closed = true
                        break
                    } else {
                        value.append(bytes[i]); i += 1
                    }
                }
                guard closed else { malformedAt = valueStart; return }
            } else {
                while i < bytes.count, !isBlank(bytes[i]) {
                    if bytes[i] == backslash {
                        i += 1
                        if i < bytes.count { value.append(bytes[i]); i += 1 }
                    } else {
                        value.append(bytes[i]); i += 1
                    }
                }
            }
            pairs.append(Pair(key: key, value: String(decoding: value, as: UTF8.self), valueRange: valueStart..<i))
        }
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
