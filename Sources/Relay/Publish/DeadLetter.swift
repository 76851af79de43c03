import KafkaClient
import PGOutput
import PostgresClient
import RelayCore
import Schema

/// A row that cannot be published, and what the dead-letter path writes for it: the copy
/// on the dead-letter topic and the row's DEAD mark. The relay's dead-letter worker and the
/// sweeper both build them here, so a copy reads the same whoever made it and
/// `outbox.last_error` is written one way. (Which of the two writes goes first is each
/// caller's: the worker holds the row's place in the delivery line and retries both; the
/// sweeper leaves the row INIT when the copy fails.)
struct DeadLetter: Sendable {
    /// nil when the row's id could not be read: the copy is then the only record of it.
    var outboxID: Int64?
    var reason: DeadLetterReason
    /// What went wrong, for `outbox-dlq-error` and `last_error`.
    var detail: String
    /// The topic the row was on its way to, as it was (it may be the reason it failed).
    var originalTopic: String
    var key: [UInt8]
    var value: [UInt8]
    /// The record's own headers, kept on the copy.
    var headers: [(String, [UInt8])]
    /// The table whose row is marked DEAD.
    var table: OutboxTable

    /// `table`: nil reads it from the record's `outbox-table` header, which every record
    /// built from a row of another table than public.outbox carries.
    init(outboxID: Int64?, reason: DeadLetterReason, detail: String, originalTopic: String,
         key: [UInt8], value: [UInt8], headers: [(String, [UInt8])], table: OutboxTable? = nil) {
        self.outboxID = outboxID; self.reason = reason; self.detail = detail; self.originalTopic = originalTopic
        self.key = key; self.value = value; self.headers = headers
        self.table = table ?? RecordContract.table(in: headers)
    }

    /// The row as the record that could not be sent (the sweeper's re-sends).
    init(outboxID: Int64, reason: DeadLetterReason, detail: String, record: OutgoingRecord) {
        self.init(outboxID: outboxID, reason: reason, detail: detail, originalTopic: record.topic,
                  key: record.key ?? [], value: record.value, headers: record.headers)
    }

    /// The copy on the dead-letter `topic` (`RecordContract`): the key cut to
    /// `maxCopiedKeyBytes`, the value unless it is over `maxCopiedValueBytes` (then its size
    /// instead: the row still holds the payload), the headers plus the dead-letter headers.
    func copy(to topic: String) -> OutgoingRecord {
        var copied = RecordContract.deadLetterHeaders(from: headers, reason: reason.rawValue, error: detail,
                                                      originalTopic: TopicRouter.printable(originalTopic, limit: 249))
        var copiedValue = value
        if copiedValue.count > RecordContract.Limits.maxCopiedValueBytes {
            copied.append((RecordContract.DeadLetterHeader.originalSize, Array(String(copiedValue.count).utf8)))
            copiedValue = []
        }
        return OutgoingRecord(topic: topic, key: Array(key.prefix(RecordContract.Limits.maxCopiedKeyBytes)),
                              value: copiedValue, headers: copied)
    }

    /// `outbox.last_error`: the reason's code and the detail, cut to the column's limit.
    var lastError: String {
        String("\(reason.rawValue): \(detail)".prefix(RecordContract.Limits.maxLastErrorCharacters))
    }

    /// Marks the row DEAD. Only an INIT row: one a consumer already completed (through a
    /// sweeper re-send) stays as it is, and marking twice changes nothing.
    static func markDeadSQL(_ table: OutboxTable) -> String {
        """
        UPDATE \(table.sql) SET status = 'DEAD', last_error = $2, last_sent_at = now()
        WHERE outbox_id = $1 AND status = 'INIT'
        """
    }

    /// `markDeadSQL`'s parameters; nil without an id (nothing to mark).
    var markDeadParameters: [PGValue]? {
        outboxID.map { [.int($0), .text(lastError)] }
    }

    func markDead(on connection: PGConnection) async throws {
        guard let parameters = markDeadParameters else { return }
        try await connection.query(Self.markDeadSQL(table), parameters)
    }

    /// Blocking form of `markDead`, for the dead-letter worker's thread.
    func markDeadBlocking(on connection: PGConnection) throws {
        guard let parameters = markDeadParameters else { return }
        try connection.queryBlocking(Self.markDeadSQL(table), parameters)
    }
}
