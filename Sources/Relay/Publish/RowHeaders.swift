import KafkaClient
import PGOutput
import Schema

/// librdkafka's header list as a `RecordHeaderSink` (internal: the conformance stays
/// out of both modules' public surface).
struct KafkaHeaderSink: RecordHeaderSink, ~Copyable {
    var headers: KafkaHeaders
    mutating func add(_ name: String, _ value: UnsafeRawBufferPointer) { headers.add(name, value) }
}

/// The headers of a captured row's record, in the configured style (`RecordHeaders`),
/// built straight into librdkafka's list from the message bytes.
enum RowHeaders {
    static func input(_ row: OutboxRowView, commitLSN: LSN) -> RecordHeaderInput {
        RecordHeaderInput(idText: row.idText, type: row.type, createdAt: row.createdAt, topic: row.topic,
                          traceParent: row.traceParent, commitLSN: commitLSN == .invalid ? nil : commitLSN.rawValue, table: row.table)
    }

    static func make(_ style: HeaderStyle, for row: OutboxRowView, commitLSN: LSN) -> KafkaHeaders {
        var sink = KafkaHeaderSink(headers: KafkaHeaders(capacity: 8))
        RecordHeaders.build(style, input(row, commitLSN: commitLSN), into: &sink)
        return sink.headers
    }

    /// How many headers `make` adds and their name plus value bytes, for `RecordLimits`.
    static func measure(_ style: HeaderStyle, _ row: OutboxRowView, commitLSN: LSN) -> (count: Int, bytes: Int) {
        RecordHeaders.measure(style, input(row, commitLSN: commitLSN))
    }

    /// A cheap bound on `measure` (`RecordHeaders.upperBound`).
    static func upperBound(_ row: OutboxRowView) -> (count: Int, bytes: Int) {
        RecordHeaders.upperBound(input(row, commitLSN: .invalid))
    }

    /// The same headers as a list, for a row copied out of the stream or read by SQL
    /// (`commitLSN` `.invalid`: no `outbox-lsn`). `resendAttempt` marks a sweeper re-send.
    static func list(_ style: HeaderStyle, for row: OutboxRow, commitLSN: LSN, resendAttempt: Int? = nil) -> [(String, [UInt8])] {
        RecordHeaders.list(style, id: row.id, type: row.type, createdAt: row.createdAt, topic: row.topic,
                           traceParent: row.traceParent, commitLSN: commitLSN == .invalid ? nil : commitLSN.rawValue,
                           resendAttempt: resendAttempt, table: row.table)
    }
}
