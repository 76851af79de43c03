import Schema
import Testing

@Suite("Record headers per header style")
struct RecordHeadersTests {
    static let created = "2026-11-26 18:57:50.123456+00"
    static let rfc3339 = "2026-11-26T18:57:50.123456+00:00"

    func headers(_ style: HeaderStyle, trace: String? = nil, lsn: UInt64? = 0x1_6B37_48, resend: Int? = nil,
                 createdAt: String = created) -> [(String, String)] {
        RecordHeaders.list(style, id: 42, type: "BOOK_SAVE", createdAt: createdAt, topic: "BOOK_SAVE",
                           traceParent: trace, commitLSN: lsn, resendAttempt: resend)
            .map { ($0.0, String(decoding: $0.1, as: UTF8.self)) }
    }

    @Test("outbox (default): today's names, RFC 3339 time, decimal commit LSN")
    func outbox() {
        #expect(HeaderStyle.default == .outbox)
        let got = headers(.outbox)
        #expect(got.map(\.0) == ["outbox-id", "outbox-type", "outbox-created-at", "outbox-lsn"])
        #expect(got.map(\.1) == ["42", "BOOK_SAVE", Self.rfc3339, "23803720"])
    }

    @Test("debezium: event id in `id`, type in `eventType`")
    func debezium() {
        let got = headers(.debezium)
        #expect(got.map(\.0) == ["id", "eventType", "outbox-created-at", "outbox-lsn"])
        #expect(got.map(\.1) == ["42", "BOOK_SAVE", Self.rfc3339, "23803720"])
    }

    @Test("cloudevents: the Kafka binding's binary-mode attributes")
    func cloudEvents() {
        let got = headers(.cloudevents)
        #expect(got.map(\.0) == ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type", "outbox-lsn"])
        #expect(got.map(\.1) == ["1.0", "42", "BOOK_SAVE", "/outbox/BOOK_SAVE", Self.rfc3339, "application/json", "23803720"])
    }

    @Test("every style: traceparent and the resend attempt when present; no LSN when unknown", arguments: HeaderStyle.allCases)
    func optional(style: HeaderStyle) {
        let got = headers(style, trace: "00-abc-def-01", lsn: nil, resend: 3)
        #expect(!got.contains { $0.0 == "outbox-lsn" })
        #expect(got.suffix(2).map(\.0) == ["traceparent", "outbox-resend-attempt"])
        #expect(got.suffix(2).map(\.1) == ["00-abc-def-01", "3"])
        #expect(!headers(style, trace: "").contains { $0.0 == "traceparent" }, "an empty trace context is not sent")
    }

    @Test("the LSN header is exact over the whole range", arguments: [UInt64(0), 1, 0x1_6B37_48, UInt64.max])
    func lsn(value: UInt64) {
        let got = headers(.outbox, lsn: value)
        #expect(got.first { $0.0 == "outbox-lsn" }?.1 == String(value))
    }

    @Test("a created_at with no RFC 3339 form leaves the time header out, in every style", arguments: HeaderStyle.allCases)
    func noTime(style: HeaderStyle) {
        let names = headers(style, createdAt: "infinity").map(\.0)
        #expect(!names.contains("outbox-created-at") && !names.contains("ce_time"))
        #expect(names.contains("outbox-lsn"))
    }

    @Test("measure counts exactly what build adds", arguments: HeaderStyle.allCases)
    func measure(style: HeaderStyle) {
        let list = headers(style, trace: "00-abc-def-01")
        let id = Array("42".utf8), type = Array("BOOK_SAVE".utf8), created = Array(Self.created.utf8), trace = Array("00-abc-def-01".utf8)
        let measured = id.withUnsafeBytes { id in type.withUnsafeBytes { type in created.withUnsafeBytes { created in
            trace.withUnsafeBytes { trace in
                RecordHeaders.measure(style, RecordHeaderInput(idText: id, type: type, createdAt: created, topic: type,
                                                                traceParent: trace, commitLSN: 0x1_6B37_48))
            } } } }
        #expect(measured.count == list.count)
        #expect(measured.bytes == list.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count })
    }

    @Test("upperBound is never below measure, whatever the style and the values", arguments: HeaderStyle.allCases)
    func upperBound(style: HeaderStyle) {
        // Long values everywhere: the largest id, a long type and topic, a full trace
        // context, the largest LSN (20 digits) and a re-send attempt.
        let id = Array(String(Int64.max).utf8), type = Array(String(repeating: "T", count: 249).utf8)
        let created = Array(Self.created.utf8), topic = Array(String(repeating: "p", count: 249).utf8)
        let trace = Array("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".utf8)
        for lsn in [nil, UInt64.max] {
            let (bound, measured) = id.withUnsafeBytes { id in type.withUnsafeBytes { type in created.withUnsafeBytes { created in
                topic.withUnsafeBytes { topic in trace.withUnsafeBytes { trace in
                    let input = RecordHeaderInput(idText: id, type: type, createdAt: created, topic: topic, traceParent: trace, commitLSN: lsn)
                    return (RecordHeaders.upperBound(input), RecordHeaders.measure(style, input))
                } } } } }
            #expect(bound.count >= measured.count && bound.bytes >= measured.bytes, "\(bound) < \(measured)")
        }
    }

    @Test("consumers find the id and the type of every style")
    func lookupLists() {
        for style in HeaderStyle.allCases {
            let names = headers(style).map(\.0)
            #expect(RecordContract.outboxIDHeaders.contains { names.contains($0) }, "\(style)")
            #expect(RecordContract.typeHeaders.contains { names.contains($0) }, "\(style)")
        }
    }
}
