import Logging

/// `log-format text`: swift-log's `StreamLogHandler` line, kept to one line per event.
///
/// libpq's messages carry line breaks ("server closed the connection unexpectedly\n\tThis
/// probably means…"), and `StreamLogHandler` writes values as they are: a relay that lost
/// its server logged each reconnect over three lines, the level and the message on
/// different ones, which line-based tools (grep, journald, a shipper's line splitter)
/// cut apart. Line breaks and the indentation after them become one space.
struct TextLogHandler: LogHandler {
    private var inner: StreamLogHandler

    /// Writes to standard error.
    init(label: String, logLevel: Logger.Level) {
        self.init(inner: .standardError(label: label), logLevel: logLevel)
    }

    /// Writes to `stream` (tests).
    init(label: String, logLevel: Logger.Level, stream: any TextOutputStream & Sendable) {
        self.init(inner: StreamLogHandler(label: label, stream: stream), logLevel: logLevel)
    }

    private init(inner: StreamLogHandler, logLevel: Logger.Level) {
        self.inner = inner
        self.inner.logLevel = logLevel
    }

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue.mapValues(Self.oneLine) }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue.map(Self.oneLine) }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = "\(Self.oneLine(event.message.description))"
        event.metadata = event.metadata?.mapValues(Self.oneLine)
        inner.log(event: event)
    }

    static func oneLine(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
        switch value {
        case .string(let text): .string(oneLine(text))
        case .stringConvertible(let convertible): .string(oneLine(convertible.description))
        case .array(let values): .array(values.map(oneLine))
        case .dictionary(let values): .dictionary(values.mapValues(oneLine))
        }
    }

    /// Each line break, with the blanks around it, becomes one space.
    static func oneLine(_ text: String) -> String {
        guard text.contains(where: \.isNewline) else { return text }
        var result = ""
        var pendingBreak = false
        for character in text {
            if character.isNewline {
                pendingBreak = true
                while result.last == " " || result.last == "\t" { result.removeLast() }
            } else if pendingBreak && (character == " " || character == "\t") {
                continue
            } else {
                if pendingBreak && !result.isEmpty { result.append(" ") }
                pendingBreak = false
                result.append(character)
            }
        }
        return result
    }
}
