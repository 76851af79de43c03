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

    public mutating func extract(relation: Relation, tuple: [ColumnValue],
                                 bytes: UnsafeRawBufferPointer) throws(MalformedOutboxRow) -> OutboxRow {
        let index = try resolve(relation)
        func value(_ i: Int, _ name: String, id: Int64?) throws(MalformedOutboxRow) -> UnsafeRawBufferPointer? {
            guard i < tuple.count else { throw MalformedOutboxRow(outboxID: id, column: name, reason: "is missing from the row") }
            switch tuple[i] {
            case .null: return nil
            case .unchangedToast:
                throw MalformedOutboxRow(outboxID: id, column: name, reason: "was not sent (unchanged TOAST value)")
            case .text(let r), .binary(let r):
                guard r.upperBound <= bytes.count else {
                    throw MalformedOutboxRow(outboxID: id, column: name, reason: "points outside the message")
                }
                return UnsafeRawBufferPointer(rebasing: bytes[r])
            }
        }
        guard let idBytes = try value(index.id, "outbox_id", id: nil),
              let id = Int64(String(decoding: idBytes, as: UTF8.self)) else {
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
        let type = try value(index.type, "type", id: id).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let created = try value(index.createdAt, "created_at", id: id).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let trace = try index.traceParent.flatMap { i throws(MalformedOutboxRow) in
            try value(i, "trace_parent", id: id).map { String(decoding: $0, as: UTF8.self) }
        }
        return OutboxRow(id: id, topic: String(decoding: topic, as: UTF8.self), key: Array(key), type: type,
                         payload: Array(payload), createdAt: created, traceParent: trace)
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
