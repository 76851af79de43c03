import KafkaClient
import PGOutput
import PostgresClient
import Schema

/// An outbox row as the Kafka record the relay publishes for it. Rows read by SQL (the
/// first start's gap, the sweeper's claim) and rows copied out of the stream for the
/// dead-letter path all become records here, so they carry the same key, value and
/// headers as the stream's own records.
extension OutboxRow {
    /// A row from a query that returns the outbox columns under their own names, the
    /// payload and creation time as text (`payload::text AS payload`,
    /// `created_at::text AS created_at`).
    init(stored row: PGRow, table: OutboxTable) throws {
        self.init(id: try row.int64("outbox_id"), topic: try row.string("topic"), key: Array(try row.string("mq_key").utf8),
                  type: try row.string("type"), payload: Array(try row.string("payload").utf8),
                  createdAt: try row.string("created_at"), traceParent: try row.optionalString("trace_parent"), table: table)
    }

    /// The record on `topic` (the row's own, or where the router sends it): key = mq_key,
    /// value = the payload as stored, the headers in `style`. `commitLSN` is `.invalid` for
    /// a row read by SQL: PostgreSQL keeps no commit LSN with a row, and a guessed
    /// `outbox-lsn` would mislead deduplication. `resendAttempt` marks a sweeper re-send.
    func record(on topic: String, style: HeaderStyle, commitLSN: LSN = .invalid, resendAttempt: Int? = nil) -> OutgoingRecord {
        OutgoingRecord(topic: topic, key: key, value: payload,
                       headers: RowHeaders.list(style, for: self, commitLSN: commitLSN, resendAttempt: resendAttempt))
    }
}
