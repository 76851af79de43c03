import KafkaClient
import PostgresClient
@testable import Relay
import RelayCore
import Schema
import PGOutput
import Testing

private let keyLimit = RecordContract.Limits.maxCopiedKeyBytes
private let valueLimit = RecordContract.Limits.maxCopiedValueBytes

@Suite("Dead-letter copies and DEAD marks (relay worker and sweeper alike)")
struct DeadLetterTests {
    static let dlq = "outbox.dlq"

    func letter(key: [UInt8] = Array("BOOK:7".utf8), value: [UInt8] = Array(#"{"a": 1}"#.utf8),
                headers: [(String, [UInt8])] = [("outbox-id", Array("42".utf8))], id: Int64? = 42,
                reason: DeadLetterReason = .invalidTopic, detail: String = "no such topic", topic: String = "BAD TOPIC") -> DeadLetter {
        DeadLetter(outboxID: id, reason: reason, detail: detail, originalTopic: topic, key: key, value: value, headers: headers)
    }

    @Test("the key is cut to maxCopiedKeyBytes; shorter keys are copied whole", arguments: [
        (0, 0), (1, 1), (keyLimit - 1, keyLimit - 1), (keyLimit, keyLimit), (keyLimit + 1, keyLimit), (5_000, keyLimit),
    ])
    func keyCut(length: Int, copied: Int) {
        let key = (0..<length).map { UInt8(truncatingIfNeeded: $0) }
        let copy = letter(key: key).copy(to: Self.dlq)
        #expect(copy.key == Array(key.prefix(copied)))
    }

    @Test("a value over maxCopiedValueBytes is replaced by its size; up to the limit it is copied", arguments: [
        (10, false), (valueLimit, false), (valueLimit + 1, true),
    ])
    func valueCut(length: Int, replaced: Bool) {
        let value = [UInt8](repeating: 0x61, count: length)
        let copy = letter(value: value).copy(to: Self.dlq)
        let size = copy.headers.first { $0.0 == RecordContract.DeadLetterHeader.originalSize }.map { String(decoding: $0.1, as: UTF8.self) }
        #expect(copy.value == (replaced ? [] : value))
        #expect(size == (replaced ? String(length) : nil))
    }

    @Test("the copy goes to the dead-letter topic with the row's headers and the dead-letter headers; old ones are dropped")
    func headers() {
        let copy = letter(headers: [("outbox-id", Array("42".utf8)), ("outbox-dlq-reason", Array("older".utf8))],
                          reason: .messageTooLarge, detail: "about 2000000 bytes", topic: "BOOK_SAVE\n").copy(to: Self.dlq)
        #expect(copy.topic == Self.dlq)
        #expect(copy.headers.map(\.0) == ["outbox-id", "outbox-dlq-reason", "outbox-dlq-error", "outbox-dlq-original-topic"])
        #expect(copy.headers.map { String(decoding: $0.1, as: UTF8.self) } == ["42", "message_too_large", "about 2000000 bytes", #""BOOK_SAVE?""#])
    }

    @Test("last_error is the reason's code and the detail, cut to maxLastErrorCharacters")
    func lastError() {
        #expect(letter(reason: .maxAttemptsExceeded, detail: "not COMPLETE after 3 resends").lastError
                == "max_attempts_exceeded: not COMPLETE after 3 resends")
        let long = letter(reason: .brokerRejected, detail: String(repeating: "x", count: 3_000)).lastError
        #expect(long.count == RecordContract.Limits.maxLastErrorCharacters)
        #expect(long.hasPrefix("broker_rejected: xxx"))
    }

    @Test("the DEAD mark: only INIT rows, with the last error; nothing to mark without an id")
    func markDead() {
        let sql = DeadLetter.markDeadSQL(.default)
        #expect(sql.contains(#"UPDATE "public"."outbox""#) && sql.contains("status = 'DEAD'") && sql.contains("AND status = 'INIT'"))
        let marked = letter(id: 42, reason: .malformedRow, detail: "mq_key is empty")
        #expect(marked.markDeadParameters == [.int(42), .text("malformed_row: mq_key is empty")])
        #expect(letter(id: nil).markDeadParameters == nil)
    }

    @Test("the row is marked DEAD in its own table: the record's outbox-table header, public.outbox without one")
    func markDeadInItsTable() throws {
        let teamA = try OutboxTable(parsing: "team_a.outbox")
        let record = OutgoingRecord(topic: "ORDER_PLACED", key: nil, value: [],
                                    headers: [("outbox-id", Array("7".utf8)), ("outbox-table", Array("team_a.outbox".utf8))])
        let dead = DeadLetter(outboxID: 7, reason: .brokerRejected, detail: "refused", record: record)
        #expect(dead.table == teamA)
        #expect(DeadLetter.markDeadSQL(dead.table).contains(#"UPDATE "team_a"."outbox""#))
        #expect(letter(id: 7).table == .default)
        // A row the extractor could not read names its table itself.
        let malformed = DeadLetter(outboxID: 8, reason: .malformedRow, detail: "x", originalTopic: "", key: [], value: [],
                                   headers: [], table: teamA)
        #expect(malformed.table == teamA)
    }

    @Test("a record the sweeper could not send: its topic, key, value and headers as they were")
    func fromRecord() {
        let record = OutgoingRecord(topic: "BOOK_SAVE", key: nil, value: Array("{}".utf8), headers: [("outbox-id", Array("7".utf8))])
        let dead = DeadLetter(outboxID: 7, reason: .maxAttemptsExceeded, detail: "not COMPLETE after 3 resends", record: record)
        #expect(dead.originalTopic == "BOOK_SAVE" && dead.key == [] && dead.value == Array("{}".utf8))
        #expect(dead.headers.map(\.0) == ["outbox-id"])
        #expect(dead.copy(to: Self.dlq).headers.first { $0.0 == "outbox-dlq-error" }.map { String(decoding: $0.1, as: UTF8.self) }
                == "not COMPLETE after 3 resends")
    }
}
