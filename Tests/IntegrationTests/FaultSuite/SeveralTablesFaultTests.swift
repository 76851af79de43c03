import EphemeralServers
import Foundation
import KafkaClient
import PGOutput
import PostgresClient
import Relay
import Testing

/// The kill -9 scenario with two outbox tables behind one slot (issue 31, item 5): a writer on
/// each table, the relay process killed at random points while it publishes. Each table's
/// rows are checked on their own against the oracle's commit order: ids collide across
/// tables (each has its own sequence), so a row is its table and its id.
@Suite("Fault injection: several outbox tables", .serialized)
struct SeveralTablesFaultTests {
    static let teamA = try! OutboxTable(parsing: "team_a.outbox")
    static let kills = min(Fault.relayKills, 8)

    @Test("relay process with two outbox tables: kill -9 at random points under load on both; each table's rows all delivered, in commit order per key")
    func killNineTwoTables() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            _ = try await OutboxTableMigration.install(Self.teamA, on: db)
            let oracle = try await CommitOrderOracle.create(on: db)
            // The slot exists before the load: every row is the stream's, none the first start's gap.
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])
            let tables = ["--set", "outbox-tables=public.outbox,\(Self.teamA.qualifiedName)"]
            let loads = [OutboxTable.default, Self.teamA].map { LoadGenerator(url: ctx.databaseURL, keys: 20, table: $0) }
            var killedWhilePublishing = 0
            for round in 0..<Self.kills {
                let port = freeLoopbackPort()
                let relay = try startRelayProcess(ctx, extra: tables, logName: "tables-k\(round)", httpPort: port)
                if await eventually(timeout: .seconds(30), every: .milliseconds(10), {
                    ((await LoopbackHTTP.get(port: port, path: "/metrics")).flatMap { LoopbackHTTP.sample("outbox_relay_events_published_total", in: $0.body) } ?? 0) > 0
                }) {
                    killedWhilePublishing += 1
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...900)))
                relay.signal(SIGKILL)
                _ = await relay.waitForExit()
            }
            for load in loads { await load.stop() }
            #expect(killedWhilePublishing == Self.kills, "only \(killedWhilePublishing) relays published before their kill")
            let final = try startRelayProcess(ctx, extra: tables, logName: "tables-final")
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"], count: .max,
                                                  timeout: .seconds(180), idle: .seconds(5))
            for table in [OutboxTable.default, Self.teamA] {
                let committed = try await oracle.committed(on: db, table: table)
                // public.outbox's records carry no table header (the contract before several tables).
                let own = messages.filter { ($0.headerString("outbox-table") ?? OutboxTable.default.qualifiedName) == table.qualifiedName }
                let check = DeliveryCheck(committed: committed, messages: own)
                print("FAULT several tables, kill -9 x\(Self.kills), \(table): \(check)")
                #expect(committed.count > 100, "\(table): the load wrote \(committed.count) rows")
                #expect(check.isClean, "\(table): \(check)")
            }
            #expect(await final.terminate() == 0, "exit after SIGTERM: \(final.output.suffix(1_500))")
            try await oracle.drop(on: db)
        }
    }
}
