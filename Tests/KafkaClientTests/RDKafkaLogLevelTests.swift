@testable import KafkaClient
import Logging
import Testing

/// librdkafka's log lines by syslog level. Its LOG_ERR lines are broker connections that
/// failed or timed out, which it retries by itself: a broker frozen for 20 s logged three
/// errors from the consumers before they became warnings.
@Suite("librdkafka log levels")
struct RDKafkaLogLevelTests {
    @Test("syslog levels: LOG_ERR (a broker connection failed, retried) is a warning; only LOG_CRIT and above are errors",
          arguments: [(Int32(0), Logger.Level.error), (2, .error), (3, .warning), (4, .warning), (5, .info), (6, .info), (7, .debug)])
    func levels(syslog: Int32, expected: Logger.Level) {
        #expect(RDKafkaLogLevel.level(syslog: syslog) == expected)
    }
}
