public import PGOutput
/// Something headers can be added to: librdkafka's list on the hot path, an array for
/// the sweeper, the gap publisher and dead-letter copies, a byte counter for the size check.
public protocol RecordHeaderSink: ~Copyable {
    mutating func add(_ name: String, _ value: UnsafeRawBufferPointer)
}

/// The row's columns the headers are made of, borrowed (no copy on the hot path).
public struct RecordHeaderInput {
    /// `outbox_id` as decimal text.
    public var idText: UnsafeRawBufferPointer
    public var type: UnsafeRawBufferPointer
    /// `created_at` as PostgreSQL prints it; converted to RFC 3339 here.
    public var createdAt: UnsafeRawBufferPointer
    /// The row's `topic` column (before any route), for `ce_source`.
    public var topic: UnsafeRawBufferPointer
    public var traceParent: UnsafeRawBufferPointer?
    /// The commit LSN of the row's transaction. Known to the stream only: PostgreSQL does not
    /// keep it with the row, so the sweeper's re-sends and the slot-gap backfill pass nil.
    public var commitLSN: UInt64?
    /// Sweeper re-sends: which re-send this is.
    public var resendAttempt: Int?
    /// The row's table. The default table's records carry no `outbox-table` header, so a
    /// single-table deployment's records are what they always were.
    public var table: OutboxTable

    public init(idText: UnsafeRawBufferPointer, type: UnsafeRawBufferPointer, createdAt: UnsafeRawBufferPointer,
                topic: UnsafeRawBufferPointer, traceParent: UnsafeRawBufferPointer? = nil, commitLSN: UInt64? = nil,
                resendAttempt: Int? = nil, table: OutboxTable = .default) {
        self.idText = idText; self.type = type; self.createdAt = createdAt; self.topic = topic
        self.traceParent = traceParent; self.commitLSN = commitLSN; self.resendAttempt = resendAttempt; self.table = table
    }
}

/// Builds a record's headers in the chosen `HeaderStyle`: the one definition the relay,
/// the sweeper, the gap publisher and dead-letter copies share. Pure.
///
/// | header            | outbox              | debezium            | cloudevents                 |
/// | ----------------- | ------------------- | ------------------- | --------------------------- |
/// | event id          | `outbox-id`         | `id`                | `ce_id` (+ `ce_specversion`)|
/// | type              | `outbox-type`       | `eventType`         | `ce_type`                   |
/// | time (RFC 3339)   | `outbox-created-at` | `outbox-created-at` | `ce_time`                   |
/// | source / content  |                     |                     | `ce_source`, `content-type` |
/// | commit LSN        | `outbox-lsn`        | `outbox-lsn`        | `outbox-lsn`                |
/// | trace context     | `traceparent`       | `traceparent`       | `traceparent`               |
/// | table (not public.outbox) | `outbox-table` | `outbox-table`   | `outbox-table`              |
public enum RecordHeaders {
    typealias H = RecordContract.Header
    typealias D = RecordContract.DebeziumHeader
    typealias C = RecordContract.CloudEventsHeader

    public static func build<Sink: RecordHeaderSink & ~Copyable>(_ style: HeaderStyle, _ row: RecordHeaderInput, into sink: inout Sink) {
        withUnsafeTemporaryAllocation(byteCount: RFC3339Timestamp.maxLength, alignment: 1) { timeBuffer in
            let time = RFC3339Timestamp.convert(row.createdAt, into: timeBuffer).map { UnsafeRawBufferPointer(rebasing: timeBuffer[..<$0]) }
            switch style {
            case .outbox:
                sink.add(H.outboxID, row.idText)
                sink.add(H.type, row.type)
                if let time { sink.add(H.createdAt, time) }
            case .debezium:
                sink.add(D.id, row.idText)
                sink.add(D.type, row.type)
                if let time { sink.add(H.createdAt, time) }
            case .cloudevents:
                add(C.specVersion, C.specVersionValue, to: &sink)
                sink.add(C.id, row.idText)
                sink.add(C.type, row.type)
                addSource(row.topic, to: &sink)
                if let time { sink.add(C.time, time) }
                add(C.contentType, C.contentTypeValue, to: &sink)
            }
        }
        if let lsn = row.commitLSN { addDecimal(H.lsn, lsn, to: &sink) }
        if let trace = row.traceParent, !trace.isEmpty { sink.add(H.traceParent, trace) }
        if let attempt = row.resendAttempt { addDecimal(H.resendAttempt, UInt64(max(attempt, 0)), to: &sink) }
        if row.table != .default { add(H.table, row.table.qualifiedName, to: &sink) }
    }

    /// The headers as a list, from owned values (the sweeper, the gap publisher, dead letters).
    public static func list(_ style: HeaderStyle, id: Int64, type: String, createdAt: String, topic: String,
                            traceParent: String?, commitLSN: UInt64? = nil, resendAttempt: Int? = nil,
                            table: OutboxTable = .default) -> [(String, [UInt8])] {
        // One buffer holding every field, sliced: no nesting of withUnsafeBytes per field.
        var storage: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in [String(id), type, createdAt, topic, traceParent ?? ""] {
            let start = storage.count
            storage.append(contentsOf: field.utf8)
            ranges.append(start..<storage.count)
        }
        var sink = ListSink()
        storage.withUnsafeBytes { all in
            func field(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: all[ranges[i]]) }
            build(style, RecordHeaderInput(idText: field(0), type: field(1), createdAt: field(2), topic: field(3),
                                           traceParent: traceParent == nil ? nil : field(4), commitLSN: commitLSN,
                                           resendAttempt: resendAttempt, table: table), into: &sink)
        }
        return sink.headers
    }

    /// Count and name-plus-value bytes of what `build` adds, for the record size check.
    /// At least what `measure` returns, for any style, without building anything: the
    /// row's variable values (each at most once per style, a time at most 3 bytes longer
    /// in RFC 3339) plus a generous allowance for the names, fixed values and numbers.
    /// A record well under the size limit with this bound needs no exact measure.
    public static func upperBound(_ row: RecordHeaderInput) -> (count: Int, bytes: Int) {
        let variable = row.idText.count + row.type.count + (row.createdAt.count + 3) + row.topic.count + (row.traceParent?.count ?? 0)
            + row.table.schema.utf8.count + row.table.name.utf8.count
        return (count: 16, bytes: 2 * variable + 512)
    }

    public static func measure(_ style: HeaderStyle, _ row: RecordHeaderInput) -> (count: Int, bytes: Int) {
        var sink = MeasuringSink()
        build(style, row, into: &sink)
        return (sink.count, sink.bytes)
    }

    private static func add<Sink: RecordHeaderSink & ~Copyable>(_ name: String, _ value: String, to sink: inout Sink) {
        var value = value
        value.withUTF8 { sink.add(name, UnsafeRawBufferPointer($0)) }
    }

    private static func addSource<Sink: RecordHeaderSink & ~Copyable>(_ topic: UnsafeRawBufferPointer, to sink: inout Sink) {
        let prefix = C.sourcePrefix.utf8
        withUnsafeTemporaryAllocation(byteCount: prefix.count + topic.count, alignment: 1) { buffer in
            var i = 0
            for byte in prefix { buffer[i] = byte; i += 1 }
            for byte in topic { buffer[i] = byte; i += 1 }
            sink.add(C.source, UnsafeRawBufferPointer(buffer))
        }
    }

    private static func addDecimal<Sink: RecordHeaderSink & ~Copyable>(_ name: String, _ value: UInt64, to sink: inout Sink) {
        withUnsafeTemporaryAllocation(byteCount: 20, alignment: 1) { buffer in
            var v = value, i = 20
            repeat { i -= 1; buffer[i] = UInt8(ascii: "0") + UInt8(v % 10); v /= 10 } while v > 0
            sink.add(name, UnsafeRawBufferPointer(rebasing: buffer[i...]))
        }
    }
}

/// Collects headers as owned pairs.
public struct ListSink: RecordHeaderSink {
    public var headers: [(String, [UInt8])] = []
    public init() {}
    public mutating func add(_ name: String, _ value: UnsafeRawBufferPointer) { headers.append((name, Array(value))) }
}

/// Counts headers and their name plus value bytes.
public struct MeasuringSink: RecordHeaderSink {
    public var count = 0
    public var bytes = 0
    public init() {}
    public mutating func add(_ name: String, _ value: UnsafeRawBufferPointer) {
        count += 1
        bytes += name.utf8.count + value.count
    }
}
