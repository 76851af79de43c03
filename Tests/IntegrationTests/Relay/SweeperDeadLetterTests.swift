import Foundation
import KafkaClient
import Logging
import PostgresClient
@testable import Relay
import RelayCore
import Schema
import Testing
import Threading

/// The sweeper's dead-letter path writes what the relay's dead-letter worker writes: one
/// builder (`DeadLetter`) for the copy and the DEAD mark.
@Suite("Sweeper dead letters")
struct SweeperDeadLetterTests {
    @Test("a row out of attempts is copied with its key cut to the contract's limit and marked DEAD with code and detail")
    func longKeyCut() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let key = String(repeating: "k", count: 5_000)
            let id = try await db.query("""
                INSERT INTO outbox (topic, mq_key, type, payload, attempts, created_at)
                VALUES ('BOOK_SAVE', $1, 'BOOK_SAVE', '{"a": 1}', 3, now() - interval '1 hour') RETURNING outbox_id
                """, [.text(key)]).single().int64("outbox_id")
            let (producers, configuration) = try SweeperTests().makeProducers(ctx)
            let sweeper = Sweeper(policy: SweeperTests.fast, retention: nil, configuration: configuration,
                                  logger: Logger(label: "t"), metrics: RelayMetrics())
            let result = try await sweeper.resend([id], on: db, producers: producers)
            await runBlocking { producers.close(timeout: .seconds(5)) }
            #expect(result.dead == [id] && result.resent.isEmpty)
            let row = try await db.query("SELECT status, last_error FROM outbox WHERE outbox_id = $1", [.int(id)]).single()
            #expect(try row.string("status") == "DEAD")
            #expect(try row.optionalString("last_error") == "max_attempts_exceeded: not COMPLETE after 3 resends")
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.dlq"], count: 1)
            #expect(dead.count == 1)
            // Lengths, not bytes, in the expectation: a failure then prints two numbers.
            #expect(dead.first?.key?.count == RecordContract.Limits.maxCopiedKeyBytes)
            #expect(dead.first?.key.map { Array(key.utf8).starts(with: $0) } == true)
            #expect(dead.first?.headerString("outbox-dlq-reason") == "max_attempts_exceeded")
            #expect(dead.first?.headerString("outbox-dlq-error") == "not COMPLETE after 3 resends")
            #expect(dead.first?.headerString("outbox-id") == String(id))
        }
    }
}
