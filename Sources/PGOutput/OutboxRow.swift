/// The outbox columns the relay publishes, extracted from a decoded Insert.
public struct OutboxRow: Sendable, Equatable {
    public var id: Int64
    public var topic: String
    public var key: [UInt8]
    public var type: String
    /// The `jsonb` payload in PostgreSQL's text output, exactly as the server sent it.
    public var payload: [UInt8]
    public var createdAt: String
    public var traceParent: String?
    /// The table the row is in.
    public var table: OutboxTable

    public init(id: Int64, topic: String, key: [UInt8], type: String, payload: [UInt8], createdAt: String, traceParent: String?,
                table: OutboxTable = .default) {
        self.id = id; self.topic = topic; self.key = key; self.type = type
        self.payload = payload; self.createdAt = createdAt; self.traceParent = traceParent; self.table = table
    }
}

/// The outbox columns of one decoded Insert, pointing into the message's bytes without
/// copying: valid only while those bytes are (inside the callback that received them).
/// The relay publishes from it directly; `owned()` copies it when it must outlive them.
public struct OutboxRowView {
    public var id: Int64
    /// `outbox_id` as the server sent it (decimal text), for the `outbox-id` header.
    public var idText: UnsafeRawBufferPointer
    public var topic: UnsafeRawBufferPointer
    public var key: UnsafeRawBufferPointer
    public var type: UnsafeRawBufferPointer
    public var payload: UnsafeRawBufferPointer
    public var createdAt: UnsafeRawBufferPointer
    public var traceParent: UnsafeRawBufferPointer?
    /// The table the row is in.
    public var table: OutboxTable

    public var topicString: String { String(decoding: topic, as: UTF8.self) }

    public func owned() -> OutboxRow {
        OutboxRow(id: id, topic: topicString, key: Array(key), type: String(decoding: type, as: UTF8.self),
                  payload: Array(payload), createdAt: String(decoding: createdAt, as: UTF8.self),
                  traceParent: traceParent.map { String(decoding: $0, as: UTF8.self) }, table: table)
    }
}

/// A row that cannot be published as it stands. Carries the outbox id when it could be
/// read, so the relay can dead-letter the row instead of stopping.
public struct MalformedOutboxRow: Error, Sendable, CustomStringConvertible, Equatable {
    public var outboxID: Int64?
    public var column: String
    public var reason: String
    public var description: String {
        "outbox row \(outboxID.map(String.init) ?? "(id unreadable)")\(table == .default ? "" : " of \(table)"): column \(column) \(reason)"
    }
    /// The table the row is in, so that the dead-letter path marks the right row.
    public var table: OutboxTable = .default

    public init(outboxID: Int64?, column: String, reason: String, table: OutboxTable = .default) {
        self.outboxID = outboxID; self.column = column; self.reason = reason; self.table = table
    }
}

/// Maps Insert tuples of the captured outbox tables to `OutboxRow`s, resolving columns by
/// name once per relation version (a Relation message is re-sent after ALTER TABLE).
public struct OutboxRowExtractor: Sendable {
    public let tables: [OutboxTable]
    /// Per relation OID: its version when last seen, the captured table it is (nil: none)
    /// and its column layout once resolved. The last hit is kept apart: a stream mostly
    /// inserts into one table, so most rows skip the dictionary.
    private var relations: [UInt32: Known] = [:]
    private var last: (oid: UInt32, known: Known)?

    struct Known: Sendable {
        var version: Int
        var table: OutboxTable?
        var layout: Layout?
    }

    struct Layout: Sendable {
        var id: Int, topic: Int, key: Int, type: Int, payload: Int, createdAt: Int, traceParent: Int?
    }

    public init(tables: [OutboxTable] = [.default]) { self.tables = tables }

    /// The captured table `relation` is, or nil for any other table the publication sends.
    public mutating func table(of relation: Relation) -> OutboxTable? { known(relation).table }

    private mutating func known(_ relation: Relation) -> Known {
        if let last, last.oid == relation.oid, last.known.version == relation.version { return last.known }
        var known = relations[relation.oid] ?? Known(version: -1)
        if known.version != relation.version {
            known = Known(version: relation.version,
                          table: tables.first { $0.matches(namespace: relation.namespace, relation: relation.name) })
            relations[relation.oid] = known
        }
        last = (relation.oid, known)
        return known
    }

    /// Copies the row's columns out of the message.
    public mutating func extract(relation: Relation, tuple: [ColumnValue],
                                 bytes: UnsafeRawBufferPointer) throws(MalformedOutboxRow) -> OutboxRow {
        try view(relation: relation, tuple: tuple, bytes: bytes).owned()
    }

    /// The row's columns as slices of `bytes` (no copy, no allocation).
    public mutating func view(relation: Relation, tuple: [ColumnValue],
                              bytes: UnsafeRawBufferPointer) throws(MalformedOutboxRow) -> OutboxRowView {
        let (table, index) = try resolve(relation)
        func value(_ i: Int, _ name: String, id: Int64?) throws(MalformedOutboxRow) -> UnsafeRawBufferPointer? {
            guard i < tuple.count else { throw MalformedOutboxRow(outboxID: id, column: name, reason: "is missing from the row", table: table) }
            switch tuple[i] {
            case .null: return nil
            case .unchangedToast:
                throw MalformedOutboxRow(outboxID: id, column: name, reason: "was not sent (unchanged TOAST value)", table: table)
            case .text(let r), .binary(let r):
                guard r.lowerBound >= 0, r.upperBound <= bytes.count else {
                    throw MalformedOutboxRow(outboxID: id, column: name, reason: "points outside the message", table: table)
                }
                return UnsafeRawBufferPointer(rebasing: bytes[r])
            }
        }
        guard let idText = try value(index.id, "outbox_id", id: nil), let id = Self.parseInt64(idText) else {
            throw MalformedOutboxRow(outboxID: nil, column: "outbox_id", reason: "is NULL or not an integer", table: table)
        }
        guard let topic = try value(index.topic, "topic", id: id) else {
            throw MalformedOutboxRow(outboxID: id, column: "topic", reason: "is NULL", table: table)
        }
        guard let key = try value(index.key, "mq_key", id: id) else {
            throw MalformedOutboxRow(outboxID: id, column: "mq_key", reason: "is NULL", table: table)
        }
        guard let payload = try value(index.payload, "payload", id: id) else {
            throw MalformedOutboxRow(outboxID: id, column: "payload", reason: "is NULL", table: table)
        }
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        let type = try value(index.type, "type", id: id) ?? empty
        let created = try value(index.createdAt, "created_at", id: id) ?? empty
        let trace = try index.traceParent.flatMap { i throws(MalformedOutboxRow) in try value(i, "trace_parent", id: id) }
        return OutboxRowView(id: id, idText: idText, topic: topic, key: key, type: type, payload: payload,
                             createdAt: created, traceParent: trace, table: table)
    }

    /// Decimal text (optionally signed) to Int64; nil on anything else or overflow.
    static func parseInt64(_ text: UnsafeRawBufferPointer) -> Int64? {
        var bytes = text[...]
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        guard !bytes.isEmpty else { return nil }
        var value: Int64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let digit = Int64(byte - UInt8(ascii: "0"))
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            guard !o1, !o2 else { return nil }
            value = next
        }
        return value
    }

    /// The relation's table and column layout. Throws for a relation that is not one of
    /// the captured tables (the caller asks `table(of:)` first) or lacks a column.
    private mutating func resolve(_ relation: Relation) throws(MalformedOutboxRow) -> (OutboxTable, Layout) {
        var known = known(relation)
        guard let table = known.table else {
            throw MalformedOutboxRow(outboxID: nil, column: "(table)",
                                     reason: "\(relation.namespace).\(relation.name) is not a captured outbox table")
        }
        if let layout = known.layout { return (table, layout) }
        var positions: [String: Int] = [:]
        for (i, column) in relation.columns.enumerated() { positions[column.name] = i }
        func required(_ name: String) throws(MalformedOutboxRow) -> Int {
            guard let i = positions[name] else {
                throw MalformedOutboxRow(outboxID: nil, column: name, reason: "does not exist in table \(table)", table: table)
            }
            return i
        }
        let index = Layout(id: try required("outbox_id"), topic: try required("topic"), key: try required("mq_key"),
                           type: try required("type"), payload: try required("payload"),
                           createdAt: try required("created_at"), traceParent: positions["trace_parent"])
        known.layout = index
        relations[relation.oid] = known
        last = (relation.oid, known)
        return (table, index)
    }
}
