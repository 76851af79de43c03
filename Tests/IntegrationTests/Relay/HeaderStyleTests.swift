import Foundation
import KafkaClient
import PostgresClient
import Relay
import RelayCore
import Schema
import Testing

/// Real records read back from Tansu, per `--header-style`: the stream's publish (with the
/// exact commit LSN, checked against the WAL's own COMMIT record), the sweeper's re-send
/// and the dead-letter copy, all in the chosen style.
@Suite("Header styles on real records")
struct HeaderStyleTests {
    static let policy = SweeperPolicy(interval: .milliseconds(200), minimumAge: .milliseconds(500), maxAttempts: 1,
                                      backoffBase: .milliseconds(300), backoffCap: .seconds(2), batchSize: 100,
                                      scope: SweepScope(declaredTopics: ["UNREAD"]))

    static func expectedNames(_ style: HeaderStyle) -> [String] {
        switch style {
        case .outbox: ["outbox-id", "outbox-type", "outbox-created-at"]
        case .debezium: ["id", "eventType", "outbox-created-at"]
        case .cloudevents: ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type"]
        }
    }

    @Test("stream publish, sweeper re-send and dead-letter copy carry the style's headers, in both capture modes",
          arguments: HeaderStyle.allCases, [CaptureMode.stream, .notify])
    func style(style: HeaderStyle, capture: CaptureMode) async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            try await db.query("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            let relay = try RunningRelay.start(ctx, capture: capture, sweeper: Self.policy) { $0.headerStyle = style }
            #expect(await eventually { relay.service.health.current.state == .streaming })

            let before = try await db.query("SELECT pg_current_wal_insert_lsn()::text AS l").single().string("l")
            let row = try await db.query("""
                INSERT INTO outbox (topic, mq_key, type, payload, trace_parent)
                VALUES ('UNREAD', 'BOOK:1', 'BOOK', '{"a": 1}', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
                RETURNING outbox_id, pg_current_xact_id()::text AS xid, created_at
                """).single()
            let id = try row.int64("outbox_id"), xid = try row.string("xid")
            // pg_walinspect reads flushed WAL only: wait until the commit is on disk.
            let inserted = try await db.query("SELECT pg_current_wal_insert_lsn()::text AS l").single().string("l")
            #expect(await eventually { (try? await db.query("SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn AS done", [.text(inserted)]).single().bool("done")) == true })
            let after = try await db.query("SELECT pg_current_wal_flush_lsn()::text AS l").single().string("l")
            // The start of the transaction's COMMIT record: pgoutput's commit LSN.
            let commitLSN = try await db.query("""
                SELECT start_lsn::text AS l FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
                WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT' AND xid::text = $3
                """, [.text(before), .text(after), .text(xid)]).single().string("l")

            let sent = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["UNREAD"], count: 2)
            #expect(await eventually { (try? await db.query("SELECT status FROM outbox WHERE outbox_id = $1", [.int(id)]).single().string("status")) == "DEAD" })
            let dead = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["outbox.dlq"], count: 1)
            try await relay.stop()
            try #require(sent.count == 2 && dead.count == 1)
            let (published, resent) = (sent[0], sent[1])

            let names = Self.expectedNames(style)
            #expect(published.headers.map(\.0) == names + ["outbox-lsn", "traceparent"])
            #expect(resent.headers.map(\.0) == names + ["traceparent", "outbox-resend-attempt"], "a re-send has no commit LSN to give")
            #expect(dead.first.map { Array($0.headers.map(\.0).prefix(names.count)) } == names, "the dead-letter copy keeps the style's headers")
            for message in sent {
                #expect(message.keyString == "BOOK:1" && message.valueString == #"{"a": 1}"#, "key = mq_key, value = payload in every style")
                #expect(message.headerString("traceparent") == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            }

            // Exact commit LSN, decimal; PostgreSQL turns it back into its own form.
            let lsnText = try #require(published.headerString("outbox-lsn"))
            let asPGLSN = try await db.query("SELECT ('0/0'::pg_lsn + $1::numeric)::text AS l", [.text(lsnText)]).single().string("l")
            #expect(asPGLSN == commitLSN)

            let (idName, typeName, timeName): (String, String, String) = switch style {
            case .outbox: ("outbox-id", "outbox-type", "outbox-created-at")
            case .debezium: ("id", "eventType", "outbox-created-at")
            case .cloudevents: ("ce_id", "ce_type", "ce_time")
            }
            for message in sent + dead {
                #expect(message.headerString(idName) == String(id))
                #expect(message.headerString(typeName) == "BOOK")
                // RFC 3339, and the same instant as the column.
                let time = try #require(message.headerString(timeName))
                #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d/) != nil, "\(time)")
                #expect(try await db.query("SELECT $1::timestamptz = created_at AS same FROM outbox WHERE outbox_id = $2",
                                           [.text(time), .int(id)]).single().bool("same"))
            }
            if style == .cloudevents {
                #expect(published.headerString("ce_specversion") == "1.0")
                #expect(published.headerString("ce_source") == "/outbox/UNREAD")
                #expect(published.headerString("content-type") == "application/json")
            }
        }
    }
}
