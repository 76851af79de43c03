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

    public init(id: Int64, topic: String, key: [UInt8], type: String, payload: [UInt8], createdAt: String, traceParent: String?) {
        self.id = id; self.topic = topic; self.key = key; self.type = type
        self.payload = payload; self.createdAt = createdAt; self.traceParent = traceParent
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

    public var topicString: String { String(decoding: topic, as: UTF8.self) }

    public func owned() -> OutboxRow {
        OutboxRow(id: id, topic: topicString, key: Array(key), type: String(decoding: type, as: UTF8.self),
                  payload: Array(payload), createdAt: String(decoding: createdAt, as: UTF8.self),
                  traceParent: traceParent.map { String(decoding: $0, as: UTF8.self) })
    }
}

/// A row that cannot be published as it stands. Carries the outbox id when it could be
/// read, so the relay can dead-letter the row instead of stopping.
public struct MalformedOutboxRow: Error, Sendable, CustomStringConvertible, Equatable {
    public var outboxID: Int64?
    public var column: String
    public var reason: String
    public var description: String {
        "outbox row \(outboxID.map(String.init) ?? "(id unreadable)"): column \(column) \(reason)"
    }
}

/// Maps Insert tuples of the outbox table to `OutboxRow`s, resolving columns by name once
/// per relation version (a Relation message is re-sent after ALTER TABLE).
public struct OutboxRowExtractor: Sendable {
    public let tableName: String
    private var layout: (oid: UInt32, version: Int, index: Layout)?

    struct Layout: Sendable {
        var id: Int, topic: Int, key: Int, type: Int, payload: Int, createdAt: Int, traceParent: Int?
    }

    public init(tableName: String = "outbox") { self.tableName = tableName }

    /// True when `relation` is the outbox table (any schema).
    public func isOutbox(_ relation: Relation) -> Bool { relation.name == tableName }

    /// Copies the row's columns out of the message.
    public mutating func extract(relation: Relation, tuple: [ColumnValue],
                                 bytes: UnsafeRawBufferPointer) throws(MalformedOutboxRow) -> OutboxRow {
        try view(relation: relation, tuple: tuple, bytes: bytes).owned()
    }

    /// The row's columns as slices of `bytes` (no copy, no allocation).
    public mutating func view(relation: Relation, tuple: [ColumnValue],
                              bytes: UnsafeRawBufferPointer) throws(MalformedOutboxRow) -> OutboxRowView {
        let index = try resolve(relation)
        func value(_ i: Int, _ name: String, id: Int64?) throws(MalformedOutboxRow) -> UnsafeRawBufferPointer? {
            guard i < tuple.count else { throw MalformedOutboxRow(outboxID: id, column: name, reason: "is missing from the row") }
            switch tuple[i] {
            case .null: return nil
            case .unchangedToast:
                throw MalformedOutboxRow(outboxID: id, column: name, reason: "was not sent (unchanged TOAST value)")
            case .text(let r), .binary(let r):
                guard r.lowerBound >= 0, r.upperBound <= bytes.count else {
                    throw MalformedOutboxRow(outboxID: id, column: name, reason: "points outside the message")
                }
                return UnsafeRawBufferPointer(rebasing: bytes[r])
            }
        }
        guard let idText = try value(index.id, "outbox_id", id: nil), let id = Self.parseInt64(idText) else {
            throw MalformedOutboxRow(outboxID: nil, column: "outbox_id", reason: "is NULL or not an integer")
        }
        guard let topic = try value(index.topic, "topic", id: id) else {
            throw MalformedOutboxRow(outboxID: id, column: "topic", reason: "is NULL")
        }
        guard let key = try value(index.key, "mq_key", id: id) else {
            throw MalformedOutboxRow(outboxID: id, column: "mq_key", reason: "is NULL")
        }
        guard let payload = try value(index.payload, "payload", id: id) else {
            throw MalformedOutboxRow(outboxID: id, column: "payload", reason: "is NULL")
        }
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        let type = try value(index.type, "type", id: id) ?? empty
        let created = try value(index.createdAt, "created_at", id: id) ?? empty
        let trace = try index.traceParent.flatMap { i throws(MalformedOutboxRow) in try value(i, "trace_parent", id: id) }
        return OutboxRowView(id: id, idText: idText, topic: topic, key: key, type: type, payload: payload,
                             createdAt: created, traceParent: trace)
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

    private mutating func resolve(_ relation: Relation) throws(MalformedOutboxRow) -> Layout {
        if let layout, layout.oid == relation.oid, layout.version == relation.version { return layout.index }
        var positions: [String: Int] = [:]
        for (i, column) in relation.columns.enumerated() { positions[column.name] = i }
        func required(_ name: String) throws(MalformedOutboxRow) -> Int {
            guard let i = positions[name] else {
                throw MalformedOutboxRow(outboxID: nil, column: name, reason: "does not exist in table \(relation.namespace).\(relation.name)")
            }
            return i
        }
        let index = Layout(id: try required("outbox_id"), topic: try required("topic"), key: try required("mq_key"),
                           type: try required("type"), payload: try required("payload"),
                           createdAt: try required("created_at"), traceParent: positions["trace_parent"])
        layout = (relation.oid, relation.version, index)
        return index
    }
}
