import Logging
import Synchronization

/// Keeps what a service under test logs at `level` (warning) and above, for tests that check the log
/// itself (e.g. one line per batch rather than one per message).
final class LogCapture: Sendable {
    struct Entry: Sendable { let level: Logger.Level; let message: String; let metadata: [String: String] }
    private let entries = Mutex<[Entry]>([])
    let level: Logger.Level

    init(level: Logger.Level = .warning) { self.level = level }

    var all: [Entry] { entries.withLock { $0 } }
    func lines(_ message: String) -> [Entry] { all.filter { $0.message == message } }

    func logger(label: String) -> Logger {
        Logger(label: label) { _ in Handler(capture: self, logLevel: level) }
    }

    fileprivate func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }.mapValues { "\($0)" }
            capture.append(Entry(level: event.level, message: event.message.description, metadata: merged))
        }
    }
}
