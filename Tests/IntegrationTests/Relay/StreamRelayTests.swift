import Foundation
import KafkaClient
import PGOutput
import PostgresClient
import Relay
import Testing

@Suite("Stream relay against PostgreSQL and Tansu")
struct StreamRelayTests {
    @Test("a mix of transactions, including one far larger than the memory bound, arrives complete and in per-key order")
    func mixedWorkload() async throws {
        try await withTestContext { ctx in
            let admin = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: admin)
            let relay = try RunningRelay.start(ctx) { $0.streamingMemoryBytes = 1 << 20 }
            #expect(await eventually { relay.service.health.current.state == .streaming })

            try await insertOutboxRows(admin, transactions: 2_000, rowsPerTransaction: 1)
            try await insertOutboxRows(admin, transactions: 3, rowsPerTransaction: 1_000)
            // Interleaved concurrent transactions on overlapping keys.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let conn = try await ctx.connect()
                        try await insertOutboxRows(conn, transactions: 50, rowsPerTransaction: 10, keys: 20)
                    }
                }
                try await group.waitForAll()
            }
            // One 200,000-row transaction: ~50 MB of WAL, streamed by PostgreSQL before it
            // commits and spilled by the relay past its 1 MiB bound.
            try await insertOutboxRows(admin, transactions: 1, rowsPerTransaction: 200_000, keys: 500, padding: 100)

            let committed = try await oracle.committed(on: admin)
            #expect(committed.count == 207_000)
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"],
                                                  count: committed.count, timeout: .seconds(180))
            let check = DeliveryCheck(committed: committed, messages: messages)
            print("mixed workload: \(check)")
            #expect(check.isClean, "\(check)")
            #expect(check.duplicates == 0)

            // Once everything is acknowledged the slot's confirmed position reaches the end of
            // the last commit (test_decoding reports a commit at its end LSN, which is exactly
            // what the relay confirms; idle keepalives may take it further).
            let lastChange = try await oracle.lastChangeLSN(on: admin)
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await slotConfirmedLSN(admin, slot: ctx.slotName)).flatMap { $0 } ?? .invalid >= lastChange
            })
            try await relay.stop()
            try await oracle.drop(on: admin)
        }
    }

    @Test("aborted transactions, streamed or not, publish nothing; headers carry id, type and creation time")
    func abortedTransactions() async throws {
        try await withTestContext { ctx in
            let admin = try await ctx.migrated()
            let relay = try RunningRelay.start(ctx)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            let conn = try await ctx.connect()
            // Small abort, then a large one that PostgreSQL streams before the rollback.
            for rows in [3, 5_000] {
                try await conn.query("BEGIN")
                try await conn.query("""
                    INSERT INTO outbox (topic, mq_key, type, payload)
                    SELECT 'ABORTED', 'K', 'T', jsonb_build_object('n', g, 'pad', repeat('y', 200)) FROM generate_series(1, $1) g
                    """, [.int(rows)])
                try await conn.query("ROLLBACK")
            }
            // A subtransaction rolled back inside a committed, streamed transaction.
            try await conn.query("BEGIN")
            try await conn.query("INSERT INTO outbox (topic, mq_key, type, payload) SELECT 'KEPT', 'K', 'T', jsonb_build_object('n', g, 'pad', repeat('z', 200)) FROM generate_series(1, 2000) g")
            try await conn.query("SAVEPOINT s")
            try await conn.query("INSERT INTO outbox (topic, mq_key, type, payload) SELECT 'ABORTED', 'K', 'T', jsonb_build_object('n', g, 'pad', repeat('z', 200)) FROM generate_series(1, 2000) g")
            try await conn.query("ROLLBACK TO SAVEPOINT s")
            try await conn.query("COMMIT")
            let marker = try await Outbox_insertOne(admin, topic: "MARKER", key: "m")

            // The marker first, with time to arrive: under a loaded CI run it once came more
            // than the 3 s idle window after the last KEPT row, and the read below ended
            // without it. Delivery is at least once: a session restart under load may repeat
            // rows, so then read until the topics go quiet and count distinct ids.
            let markers = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["MARKER"], count: 1, timeout: .seconds(60))
            let kept = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["KEPT"], count: .max, idle: .seconds(3))
            #expect(Set(kept.compactMap { $0.headerString("outbox-id") }).count == 2_000)
            let aborted = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["ABORTED"], count: 1, timeout: .seconds(3))
            #expect(aborted.isEmpty, "aborted rows were published")
            try await relay.stop()
            let markerMessage = try #require(markers.first)
            #expect(markerMessage.headerString("outbox-id") == String(marker))
            #expect(markerMessage.headerString("outbox-type") == "T")
            #expect(markerMessage.headerString("outbox-created-at")?.hasPrefix("20") == true)
            #expect(markerMessage.keyString == "m")
        }
    }

    @Test("while the broker is frozen the slot's confirmed LSN never passes an unacknowledged row")
    func frozenBrokerHoldsLSN() async throws {
        try await withTestContext { ctx in
            let admin = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: admin)
            let relay = try RunningRelay.start(ctx)
            #expect(await eventually { relay.service.health.current.state == .streaming })
            try await insertOutboxRows(admin, transactions: 10, rowsPerTransaction: 10)
            _ = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 100)

            ctx.broker!.freeze()
            let before = try await admin.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
            try await insertOutboxRows(admin, transactions: 20, rowsPerTransaction: 5)
            // The bound is the commit of the first unacknowledged transaction (from the
            // independent oracle), not the WAL position before it: an idle relay may confirm
            // a keepalive's WAL end, which covers only WAL with nothing for it in between
            // (other databases' writes, the relay's own slot record). Only transactions with
            // outbox rows count: the relay's slot-record UPDATE for the rows acknowledged
            // before the freeze can commit after `before`, and passing it is correct (a
            // loaded CI run did, and this query used to count it as unacknowledged).
            let firstUnacknowledged = try await admin.query("""
                WITH changes AS (SELECT lsn, xid, data FROM pg_logical_slot_peek_changes($1, NULL, NULL) WHERE lsn > $2::pg_lsn)
                SELECT min(lsn)::text AS lsn FROM changes
                WHERE data LIKE 'COMMIT%' AND xid IN (SELECT xid FROM changes WHERE data LIKE 'table public.outbox: INSERT:%')
                """, [.text(oracle.slot), .text(before.description)]).single().lsn("lsn")
            for _ in 0..<20 {  // ~4 s of samples while the broker cannot acknowledge
                let confirmed = try await slotConfirmedLSN(admin, slot: ctx.slotName) ?? .invalid
                #expect(confirmed <= firstUnacknowledged, "slot confirmed \(confirmed) past the unacknowledged transaction committed at \(firstUnacknowledged)")
                try await Task.sleep(for: .milliseconds(200))
            }
            ctx.broker!.thaw()
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: 200, timeout: .seconds(60))
            #expect(Set(messages.compactMap { $0.headerString("outbox-id") }).count == 200)
            let lastChange = try await oracle.lastChangeLSN(on: admin)
            #expect(await eventually { (try? await slotConfirmedLSN(admin, slot: ctx.slotName)).flatMap { $0 } ?? .invalid > lastChange })
            try await relay.stop()
            try await oracle.drop(on: admin)
        }
    }
}

/// One INIT row through plain SQL; returns its id.
func Outbox_insertOne(_ connection: PGConnection, topic: String, key: String, payload: String = "{}") async throws -> Int64 {
    try await connection.query("INSERT INTO outbox (topic, mq_key, type, payload) VALUES ($1, $2, 'T', $3::jsonb) RETURNING outbox_id",
                               [.text(topic), .text(key), .text(payload)]).single().int64("outbox_id")
}
