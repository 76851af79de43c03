import KafkaClient
import PGOutput
@testable import Relay
import Schema
import Testing

@Suite("An outbox row as the Kafka record the relay publishes")
struct OutboxRowRecordTests {
    static let row = OutboxRow(id: 42, topic: "BOOK_SAVE", key: Array("BOOK:7".utf8), type: "BookSaved",
                               payload: Array(#"{"seat": 7}"#.utf8), createdAt: "2026-11-26 18:57:50.123456+00", traceParent: nil)
    static let rfc3339 = "2026-11-26T18:57:50.123456+00:00"

    func strings(_ headers: [(String, [UInt8])]) -> [String] { headers.map { String(decoding: $0.1, as: UTF8.self) } }

    @Test("a row read by SQL (the gap): routed topic, key = mq_key, value = payload, no outbox-lsn")
    func stored() {
        let record = Self.row.record(on: "bookings", style: .outbox)
        #expect(record.topic == "bookings")
        #expect(record.key == Array("BOOK:7".utf8))
        #expect(record.value == Array(#"{"seat": 7}"#.utf8))
        #expect(record.headers.map(\.0) == ["outbox-id", "outbox-type", "outbox-created-at"])
        #expect(strings(record.headers) == ["42", "BookSaved", Self.rfc3339])
    }

    @Test("a sweeper re-send carries its attempt; the row's trace context is kept")
    func resend() {
        var row = Self.row
        row.traceParent = "00-abc-def-01"
        let record = row.record(on: row.topic, style: .outbox, resendAttempt: 3)
        #expect(record.topic == "BOOK_SAVE")
        #expect(record.headers.map(\.0) == ["outbox-id", "outbox-type", "outbox-created-at", "traceparent", "outbox-resend-attempt"])
        #expect(strings(record.headers).suffix(2) == ["00-abc-def-01", "3"])
    }

    @Test("a row copied out of the stream keeps its commit LSN; every style names the row", arguments: HeaderStyle.allCases)
    func streamCopy(style: HeaderStyle) {
        let record = Self.row.record(on: "BOOK_SAVE", style: style, commitLSN: LSN(rawValue: 23_803_720))
        let names = record.headers.map(\.0)
        #expect(names.last == "outbox-lsn" && strings(record.headers).last == "23803720")
        #expect(RecordContract.outboxIDHeaders.contains { names.contains($0) })
    }
}
