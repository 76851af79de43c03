import Logging
@testable import OutboxRelayCLI
import Synchronization
import Testing

/// `--log-format text` promises one line per event. libpq's messages carry line breaks, and
/// a relay that lost its server logged each reconnect over three lines, its message on the
/// last one.
@Suite("Text log lines")
struct TextLogHandlerTests {
    @Test("an event whose message and metadata hold line breaks is written as one line, the breaks as single spaces")
    func oneLinePerEvent() {
        let output = CapturedStream()
        var logger = Logger(label: "outbox-relay") { TextLogHandler(label: $0, logLevel: .info, stream: output) }
        logger[metadataKey: "slot"] = "outbox_relay\n"
        let libpq = "PostgreSQL connectionLost: server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request."
        logger.error("capture session ended;\nresuming from the slot", metadata: [
            "error": "\(libpq)", "nested": ["list": ["a\r\nb"]], "attempt": "1"])
        let text = output.text
        #expect(text.hasSuffix("\n") && text.dropLast().contains(where: \.isNewline) == false, "\(text)")
        #expect(text.contains("error=PostgreSQL connectionLost: server closed the connection unexpectedly This probably means the server terminated abnormally before or while processing the request."), "\(text)")
        #expect(text.contains("capture session ended; resuming from the slot") && text.contains("slot=outbox_relay") && text.contains("a b"), "\(text)")
        #expect(text.contains(" error outbox-relay:"), "the level and the label stay at the head: \(text)")
    }

    @Test("one line: breaks and the blanks around them become one space; text without breaks is untouched",
          arguments: [("a\n\tb", "a b"), ("a \r\n  b\n", "a b"), ("\nlead", "lead"), ("x\n\n\ny", "x y"), ("tabs\tstay  inside", "tabs\tstay  inside"), ("", "")])
    func oneLine(text: String, expected: String) {
        #expect(TextLogHandler.oneLine(text) == expected)
    }
}

/// A `TextOutputStream` that keeps what was written.
private final class CapturedStream: TextOutputStream, Sendable {
    private let buffer = Mutex("")
    var text: String { buffer.withLock { $0 } }
    func write(_ string: String) { buffer.withLock { $0 += string } }
}
