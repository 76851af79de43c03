#if canImport(Glibc)
import Glibc
#endif
import Logging

/// How log events are written to standard error (`log-format`).
enum LogFormat: String, CaseIterable {
    /// swift-log's `StreamLogHandler` line, one per event (`TextLogHandler`): for people
    /// reading a terminal.
    case text
    /// One JSON object per line, for log shippers (see `JSONLogHandler`).
    case json
}

/// A swift-log handler that writes one JSON object per line to standard error:
/// `{"time":"2026-11-26T19:00:00.123Z","level":"info","component":"outbox-relay","message":"…","metadata":{…}}`.
///
/// `component` is the logger's label. Metadata values are strings (nested dictionaries
/// and arrays become JSON objects and arrays); the keys are snake_case and mean the same
/// everywhere (`slot`, `lsn`, `error`, `fix`, `topic`, `outbox_id`, …; a test checks the
/// spelling). Each line goes out in a single `write`, so lines from concurrent threads never
/// interleave.
struct JSONLogHandler: LogHandler {
    let component: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(component: String, logLevel: Logger.Level, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.component = component
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line = Self.render(time: Self.now(), level: event.level, component: component,
                               message: event.message.description, metadata: merged) + "\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                offset += n
            }
        }
    }

    /// The JSON line for one event (without the newline). Pure, for tests.
    static func render(time: String, level: Logger.Level, component: String, message: String, metadata: Logger.Metadata) -> String {
        var out = "{\"time\":" + quoted(time) + ",\"level\":" + quoted(level.rawValue) + ",\"component\":" + quoted(component)
        out += ",\"message\":" + quoted(message) + ",\"metadata\":" + object(metadata) + "}"
        return out
    }

    private static func object(_ metadata: Logger.Metadata) -> String {
        "{" + metadata.keys.sorted().map { quoted($0) + ":" + value(metadata[$0]!) }.joined(separator: ",") + "}"
    }

    private static func value(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): return quoted(text)
        case .stringConvertible(let item): return quoted(item.description)
        case .dictionary(let nested): return object(nested)
        case .array(let items): return "[" + items.map(Self.value).joined(separator: ",") + "]"
        }
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// UTC, RFC 3339 with milliseconds.
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(spec.tv_nsec / 1_000_000, 3))Z"
    }
}
