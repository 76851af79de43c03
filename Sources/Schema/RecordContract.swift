public import PGOutput
/// The Kafka record contract between the relay, the sweeper, the consumers and the demo:
/// header names, dead-letter headers, default topics and size limits. Written once here;
/// every component reads it from here (docs/architecture.md, "Kafka record").
public enum RecordContract {
    /// Headers on every record the relay or the sweeper publishes.
    public enum Header {
        /// The row's primary key: the one id consumers trust (the payload's may be stale).
        public static let outboxID = "outbox-id"
        public static let type = "outbox-type"
        public static let createdAt = "outbox-created-at"
        /// W3C trace context, when the row carries one.
        public static let traceParent = "traceparent"
        /// Present on sweeper re-sends only: which re-send this is (1, 2, ...).
        public static let resendAttempt = "outbox-resend-attempt"
        /// Present on `outbox-relay replay` records only: the replay's run id, so consumers
        /// and people reading a topic can tell a replayed copy from the first delivery.
        public static let replay = "outbox-replay"
        /// The commit LSN of the row's transaction as a decimal number, in every header
        /// style: exact, and ordered as plain integers (what Debezium users compare as
        /// `source.lsn`). Absent where the relay cannot know it (`RecordHeaders`).
        public static let lsn = "outbox-lsn"
        /// The row's table as `schema.table`, on records of every table but `public.outbox`
        /// (the default, whose records look as they always did). Consumers update the
        /// status of the row in this table; a record without it is of `public.outbox`.
        public static let table = "outbox-table"
    }

    /// `--header-style debezium`: what Debezium's outbox event router emits with the
    /// event type placed as a header (`table.fields.additional.placement=type:header:eventType`).
    public enum DebeziumHeader {
        public static let id = "id"
        public static let type = "eventType"
    }

    /// `--header-style cloudevents`: the CloudEvents Kafka protocol binding, binary content
    /// mode (attributes as `ce_`-prefixed headers, the payload as the value).
    public enum CloudEventsHeader {
        public static let specVersion = "ce_specversion"
        public static let id = "ce_id"
        public static let type = "ce_type"
        public static let source = "ce_source"
        public static let time = "ce_time"
        /// Not `ce_`-prefixed: the binding maps `datacontenttype` to Kafka's own header.
        public static let contentType = "content-type"
        public static let specVersionValue = "1.0"
        /// Payloads are `jsonb`, published as the server prints them.
        public static let contentTypeValue = "application/json"
        /// `ce_source` is this prefix plus the row's outbox topic, e.g. `/outbox/BOOK_SAVE`.
        public static let sourcePrefix = "/outbox/"
    }

    /// Where each style keeps the outbox id and the event type, in the order consumers
    /// look for them: a record of any style resolves to the same row.
    public static let outboxIDHeaders = [Header.outboxID, CloudEventsHeader.id, DebeziumHeader.id]
    public static let typeHeaders = [Header.type, CloudEventsHeader.type, DebeziumHeader.type]

    /// The table a record's row is in: its `outbox-table` header, or public.outbox without
    /// one (or with one that is not a table name, which the relay never writes).
    public static func table(in headers: [(String, [UInt8])]) -> OutboxTable {
        guard let value = headers.last(where: { $0.0 == Header.table })?.1,
              let table = try? OutboxTable(parsing: String(decoding: value, as: UTF8.self)) else { return .default }
        return table
    }

    /// Headers added to dead-letter copies (relay, sweeper and consumers alike).
    public enum DeadLetterHeader {
        /// Every dead-letter header starts with this; a copy of a copy drops the old ones.
        public static let prefix = "outbox-dlq-"
        public static let reason = "outbox-dlq-reason"
        public static let error = "outbox-dlq-error"
        public static let originalTopic = "outbox-dlq-original-topic"
        /// Set instead of copying a value larger than `Limits.maxCopiedValueBytes`.
        public static let originalSize = "outbox-dlq-original-size"
        public static let originalPartition = "outbox-dlq-original-partition"
        public static let originalOffset = "outbox-dlq-original-offset"
    }

    public enum Topic {
        /// Where the relay and the sweeper copy rows they cannot publish. Default: outbox.dlq.
        public static let relayDeadLetters = "outbox.dlq"
        /// Where consumers copy messages they cannot apply. Default: outbox.consumer.dlq.
        public static let consumerDeadLetters = "outbox.consumer.dlq"
    }

    public enum Limits {
        /// Dead-letter copies carry at most this much of the original value; a larger one
        /// is replaced by its size (the row itself still holds the payload).
        public static let maxCopiedValueBytes = 256 << 10
        /// The error text in `outbox-dlq-error` is cut to this many bytes.
        public static let maxErrorHeaderBytes = 1_000
        /// Keys copied to the dead-letter topic are cut to this many bytes.
        public static let maxCopiedKeyBytes = 4_096
        /// `outbox.last_error` is cut to this many characters.
        public static let maxLastErrorCharacters = 2_000
    }

    /// The dead-letter headers for a copy of a record with `headers`: the old dead-letter
    /// headers dropped, the reason, the error and the original topic added.
    public static func deadLetterHeaders(from headers: [(String, [UInt8])], reason: String, error: String,
                                         originalTopic: String) -> [(String, [UInt8])] {
        var copied = headers.filter { !$0.0.hasPrefix(DeadLetterHeader.prefix) }
        copied.append((DeadLetterHeader.reason, Array(reason.utf8)))
        copied.append((DeadLetterHeader.error, Array(error.utf8.prefix(Limits.maxErrorHeaderBytes))))
        copied.append((DeadLetterHeader.originalTopic, Array(originalTopic.utf8)))
        return copied
    }
}
