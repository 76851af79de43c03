import Foundation
public import PostgresClient

/// The app-side outbox API: writes one INIT row inside the caller's transaction, so the
/// event exists if and only if the business change commits.
public enum Outbox {
    /// Kafka's default `message.max.bytes` is 1 MB; rows above the limit would be dead
    /// letters at publish time, so they are refused at the source instead.
    public static let defaultMaxPayloadBytes = 1_000_000
    static let maxKeyBytes = 4_096

    /// Checks a topic against Kafka's naming rules: `[a-zA-Z0-9._-]`, 1 to 249 characters.
    public static func validateTopic(_ topic: String) throws(SchemaError) {
        guard !topic.isEmpty else { throw .invalidOutboxField(field: "topic", reason: "is empty; Kafka topics need 1 to 249 characters") }
        guard topic.utf8.count <= 249 else {
            throw .invalidOutboxField(field: "topic", reason: "has \(topic.utf8.count) characters; Kafka allows at most 249")
        }
        guard topic != "." && topic != ".." else { throw .invalidOutboxField(field: "topic", reason: "may not be \".\" or \"..\"") }
        if let bad = topic.unicodeScalars.first(where: { !isTopicScalar($0) }) {
            throw .invalidOutboxField(field: "topic", reason: "contains \(String(reflecting: String(bad))); only a-z, A-Z, 0-9, '.', '_' and '-' are allowed")
        }
    }

    static func isTopicScalar(_ s: Unicode.Scalar) -> Bool {
        switch s {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
        default: return false
        }
    }

    /// Inserts an INIT outbox row and returns its id. Run it on the connection that holds
    /// the business transaction. `payload` must be a JSON object: the row's id and key are
    /// written into it as `outboxId` and `messageQueueKey`, as the original service did.
    @discardableResult
    public static func enqueue(on connection: PGConnection, topic: String, key: String, type: String,
                               payload: [UInt8], traceParent: String? = nil,
                               maxPayloadBytes: Int = defaultMaxPayloadBytes) async throws -> Int64 {
        try validate(topic: topic, key: key, type: type, payload: payload, maxPayloadBytes: maxPayloadBytes)
        let result = try await connection.query(enqueueSQL, [
            .text(topic), .text(key), .text(type), .text(String(decoding: payload, as: UTF8.self)), PGValue(traceParent),
        ])
        return try result.single().int64("outbox_id")
    }

    /// Encodes `event` as the payload.
    @discardableResult
    public static func enqueue(on connection: PGConnection, topic: String, key: String, type: String,
                               event: some Encodable, traceParent: String? = nil) async throws -> Int64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try await enqueue(on: connection, topic: topic, key: key, type: type,
                                 payload: Array(try encoder.encode(event)), traceParent: traceParent)
    }

    static func validate(topic: String, key: String, type: String, payload: [UInt8], maxPayloadBytes: Int) throws(SchemaError) {
        try validateTopic(topic)
        guard !key.isEmpty else { throw .invalidOutboxField(field: "mq_key", reason: "is empty; the key orders events per entity (e.g. BOOK:<seatId>)") }
        guard key.utf8.count <= maxKeyBytes else {
            throw .invalidOutboxField(field: "mq_key", reason: "is \(key.utf8.count) bytes; the limit is \(maxKeyBytes)")
        }
        guard !type.isEmpty else { throw .invalidOutboxField(field: "type", reason: "is empty; consumers route on it") }
        guard payload.count <= maxPayloadBytes else {
            throw .invalidOutboxField(field: "payload", reason: "is \(payload.count) bytes; the limit is \(maxPayloadBytes) (the broker's message.max.bytes)")
        }
        guard (try? JSONSerialization.jsonObject(with: Data(payload))) is [String: Any] else {
            throw .invalidOutboxField(field: "payload", reason: "is not a JSON object")
        }
    }

    /// One round trip: the id is drawn first so that it can also go into the payload.
    static let enqueueSQL = """
        WITH next AS (SELECT nextval(pg_get_serial_sequence('outbox', 'outbox_id')) AS id)
        INSERT INTO outbox (outbox_id, topic, mq_key, type, payload, trace_parent)
        SELECT next.id, $1, $2, $3,
               jsonb_set(jsonb_set($4::jsonb, '{outboxId}', to_jsonb(next.id)), '{messageQueueKey}', to_jsonb($2::text)),
               $5
        FROM next
        RETURNING outbox_id
        """
}
