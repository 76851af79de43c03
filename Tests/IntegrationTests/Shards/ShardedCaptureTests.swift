import EphemeralServers
import Foundation
import KafkaClient
import PostgresClient
import Relay
import RelayCore
import Testing

/// Sharded capture (issue 14) on real servers, with the real binary: `migrate --shards`,
/// shard relays under load and kill -9, `status` per shard, and resharding under writes.
/// Serialized: several relay processes share the machine's two cores.
@Suite("Sharded capture", .serialized)
struct ShardedCaptureTests {
    /// `migrate --shards N` as an operator runs it, with the test's slot base name.
    func migrate(_ ctx: TestContext, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await runCLI(["migrate", "--database-url", ctx.databaseURL, "--slot", ctx.slotName] + arguments)
    }

    /// A shard relay process; `route` sends its rows to `BOOK_SAVE.s<I>`, so the test sees
    /// which shard delivered each message (the sweeper re-sends through the same route).
    func startShard(_ ctx: TestContext, _ shard: String, logName: String, route: Bool = false, sweeper: Bool = false,
                    httpPort: Int = freeLoopbackPort()) throws -> ChildProcess {
        var extra = ["--shard", shard]
        if route { extra += ["--set", "topic-routes=BOOK_SAVE=BOOK_SAVE.s\(shard.split(separator: "/")[0])"] }
        if sweeper { extra += ["--set", "sweeper=true", "--sweeper-interval", "1s", "--sweeper-min-age", "1s"] }
        return try startRelayProcess(ctx, extra: extra, logName: logName, httpPort: httpPort)
    }

    @Test("migrate --shards 3 is idempotent; every row is published by exactly one shard; a layout change needs --reshard; wrong combinations are refused")
    func migrateIsIdempotent() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let first = try await migrate(ctx, ["--shards", "3"])
            #expect(first.status == 0, "\(first.output)")
            #expect(first.output.contains("outbox_pub_0_of_3, outbox_pub_1_of_3, outbox_pub_2_of_3"), "\(first.output)")
            let second = try await migrate(ctx, ["--shards", "3"])
            #expect(second.status == 0 && second.output.contains("created publications []"), "\(second.output)")
            let filters = try await db.query("""
                SELECT pubname, rowfilter FROM pg_publication_tables WHERE pubname LIKE 'outbox\\_pub\\_%' ORDER BY pubname
                """).rows.map { "\(try $0.string("pubname")) \(try $0.string("rowfilter"))" }
            #expect(filters == (0..<3).map { "outbox_pub_\($0)_of_3 (abs((hashtext(mq_key) % 3)) = \($0))" }, "\(filters)")

            // Through the publications themselves: each row decodes in exactly one shard.
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName + "_probe")])
            try await insertOutboxRows(db, transactions: 10, rowsPerTransaction: 50, keys: 400)
            var perShard: [Int] = []
            for shard in 0..<3 {
                perShard.append(try await db.query("""
                    SELECT count(*) FILTER (WHERE substr(data, 1, 1) = 'I') AS n
                    FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)
                    """, [.text(ctx.slotName + "_probe"), .text("outbox_pub_\(shard)_of_3")]).single().int("n"))
            }
            try await db.query("SELECT pg_drop_replication_slot($1)", [.text(ctx.slotName + "_probe")])
            #expect(perShard.reduce(0, +) == 500 && perShard.allSatisfy { $0 > 100 }, "inserts per shard \(perShard)")
            let overlapping = try await db.query("""
                SELECT count(*) AS n FROM (SELECT mq_key FROM outbox GROUP BY mq_key
                  HAVING (\(ShardSpec.all(count: 3).map { "(bool_or(\($0.predicateSQL())))::int" }.joined(separator: " + "))) <> 1) k
                """).single().int("n")
            #expect(overlapping == 0, "keys matching no shard or several")

            let change = try await migrate(ctx, ["--shards", "2"])
            #expect(change.status != 0 && change.output.contains("--reshard"), "\(change.output)")
            let notify = try await migrate(ctx, ["--shards", "2", "--capture", "notify"])
            #expect(notify.status != 0 && notify.output.contains("notify"), "\(notify.output)")
            let badShard = try await runCLI(["run", "--database-url", ctx.databaseURL, "--shard", "3/3"])
            #expect(badShard.status != 0 && badShard.output.contains("--shard 2/3"), "\(badShard.output)")
            let notifyRun = try await runCLI(["run", "--database-url", ctx.databaseURL, "--shard", "0/3", "--capture", "notify"])
            #expect(notifyRun.status != 0 && notifyRun.output.contains("notify cannot be combined with --shard"), "\(notifyRun.output)")

            // An unsharded relay on a sharded database would publish every row a second time.
            let unsharded = try RunningRelay.start(ctx)
            let error = await #expect(throws: RelayError.self) { try await unsharded.task.value }
            #expect(error?.description.contains("--shard I/3") == true, "\(String(describing: error))")
            // A relay with a stale shard count finds no publication.
            let stale = try RunningRelay.start(ctx) { $0.shard = try! ShardSpec.parse("0/2"); $0.slotName += "_0"; $0.publication = "outbox_pub_0_of_2" }
            let staleError = await #expect(throws: RelayError.self) { try await stale.task.value }
            #expect(staleError?.description.contains("migrate --shards 2") == true, "\(String(describing: staleError))")
        }
    }

    @Test("3 shard relays (processes) under writes, kill -9 of random shards and restarts: nothing lost, per-key order, each key through one shard")
    func killNineAcrossShards() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            #expect(try await migrate(ctx, ["--shards", "3"]).status == 0)
            let oracle = try await CommitOrderOracle.create(on: db)
            let shards = (0..<3).map { "\($0)/3" }
            var relays = try shards.enumerated().map { try startShard(ctx, $1, logName: "s\($0)-start", route: true, sweeper: true) }
            // A standby for shard 0: active/standby works per shard.
            let standby = try startShard(ctx, "0/3", logName: "s0-standby", route: true, sweeper: true)
            let load = LoadGenerator(url: ctx.databaseURL, keys: 60, pauseMicros: 2_000)
            for round in 0..<9 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 300...1_200)))
                let victim = Int.random(in: 0..<3)
                relays[victim].signal(SIGKILL)
                _ = await relays[victim].waitForExit()
                relays[victim] = try startShard(ctx, shards[victim], logName: "s\(victim)-r\(round)", route: true, sweeper: true)
            }
            try await Task.sleep(for: .seconds(2))
            await load.stop()
            // Every shard's slot confirmed past the last committed change: all delivered.
            let last = try await oracle.lastChangeLSN(on: db)
            for shard in 0..<3 {
                #expect(try await eventually(timeout: .seconds(60)) {
                    (try await slotConfirmedLSN(db, slot: "\(ctx.slotName)_\(shard)")).map { $0 >= last } ?? false
                }, "shard \(shard) never confirmed past \(last)")
            }
            let (check, messages) = try await checkDelivery(db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                                            topics: (0..<3).map { "BOOK_SAVE.s\($0)" }, timeout: .seconds(90), idle: .seconds(4))
            var topicsPerKey: [String: Set<String>] = [:]
            for message in messages { topicsPerKey[String(decoding: message.key ?? [], as: UTF8.self), default: []].insert(message.topic) }
            let expected = try await db.query("SELECT DISTINCT mq_key, \(ShardSpec.shardExpressionSQL(count: 3)) AS shard FROM outbox").rows
            var misplaced: [String] = []
            for row in expected {
                let key = try row.string("mq_key")
                if topicsPerKey[key] != ["BOOK_SAVE.s\(try row.int("shard"))"] { misplaced.append("\(key): \(topicsPerKey[key] ?? [])") }
            }
            // The sweepers run (their shard filter is under test too) but must never be the
            // first to deliver a row: that would hide a loss of the stream behind a re-send.
            var seen = Set<String>(), firstBySweeper: [String] = []
            for message in messages {
                guard let id = message.header("outbox-id").map({ String(decoding: $0, as: UTF8.self) }), seen.insert(id).inserted else { continue }
                if message.isSweeperResend { firstBySweeper.append(id) }
            }
            #expect(firstBySweeper.isEmpty, "rows first delivered by a sweeper: \(firstBySweeper.prefix(10))")
            print("SHARDS kill -9 x9 (3 shards + a standby): \(check), keys \(expected.count), re-sends \(messages.filter(\.isSweeperResend).count)")
            #expect(check.isClean, "\(check)")
            #expect(check.committed > 500, "too little load: \(check.committed)")
            #expect(misplaced.isEmpty, "keys delivered by a shard not their own: \(misplaced.prefix(5))")
            for relay in relays + [standby] { _ = await relay.terminate(timeout: .seconds(30)) }
            try await oracle.drop(on: db)
        }
    }

    @Test("a first start killed while it publishes the rows before its slot is redone by the next start (two racing), never adopted half-done")
    func firstStartKilledMidGap() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: db)
            #expect(try await migrate(ctx, ["--shards", "1"]).status == 0)
            // A large gap, so the kill lands while the first start publishes it.
            try await insertOutboxRows(db, transactions: 40, rowsPerTransaction: 1_000, keys: 50)
            let first = try startShard(ctx, "0/1", logName: "first-start")
            #expect(await eventually(timeout: .seconds(30), every: .milliseconds(5)) { first.output.contains("created replication slot") },
                    "\(first.output.suffix(1_000))")
            first.signal(SIGKILL)
            _ = await first.waitForExit()
            let state = try await db.query("SELECT last_change FROM outbox_relay_slot WHERE slot_name = $1", [.text(ctx.slotName + "_0")]).rows
            #expect(try state.first?.string("last_change") == "creating", "the kill must land mid-gap for this test to mean anything")
            try await insertOutboxRows(db, transactions: 10, rowsPerTransaction: 10, keys: 50)
            // Two relays at once: one redoes the first start, the other waits for it.
            let relays = try (0..<2).map { try startShard(ctx, "0/1", logName: "after-kill-\($0)") }
            try await insertOutboxRows(db, transactions: 10, rowsPerTransaction: 10, keys: 50)
            let last = try await oracle.lastChangeLSN(on: db)
            #expect(try await eventually(timeout: .seconds(90)) {
                (try await slotConfirmedLSN(db, slot: "\(ctx.slotName)_0")).map { $0 >= last } ?? false
            })
            let (check, _) = try await checkDelivery(db, oracle: oracle, bootstrapServers: ctx.bootstrapServers, timeout: .seconds(120), idle: .seconds(4))
            print("SHARDS first start killed mid-gap: \(check)")
            #expect(check.isClean, "\(check)")
            for relay in relays { _ = await relay.terminate(timeout: .seconds(30)) }
            try await oracle.drop(on: db)
        }
    }

    @Test("status reports every shard and fails when a shard has no active relay")
    func statusPerShard() async throws {
        try await withTestContext { ctx in
            _ = try await ctx.migrated()
            #expect(try await migrate(ctx, ["--shards", "3"]).status == 0)
            let status = { try await runCLI(["status", "--database-url", ctx.databaseURL, "--kafka-bootstrap-servers", ctx.bootstrapServers,
                                             "--slot", ctx.slotName, "--max-slot-lag", "1GiB"]) }
            let relays = try (0..<2).map { try startShard(ctx, "\($0)/3", logName: "status-s\($0)") }
            #expect(await eventually(timeout: .seconds(30)) { (try? await status().output.contains("\(ctx.slotName)_1: confirmed")) == true })
            #expect(await eventually(timeout: .seconds(30)) { (try? await status().output.components(separatedBy: "active relay pid").count) == 3 })
            let missing = try await status()
            #expect(missing.status == 2, "\(missing.output)")
            #expect(missing.output.contains("shards: 3"), "\(missing.output)")
            #expect(missing.output.contains("shard 2/3 slot \(ctx.slotName)_2: missing, NO ACTIVE RELAY"), "\(missing.output)")
            #expect(missing.output.contains("shard 2/3 has no active relay"), "\(missing.output)")

            let port = freeLoopbackPort()
            let third = try startShard(ctx, "2/3", logName: "status-s2", httpPort: port)
            #expect(await eventually(timeout: .seconds(30)) { (try? await status().status) == 0 })
            // The shard relay's own endpoints say which shard they serve. Its slot shows active
            // (status 0) as soon as the walsender is attached, a moment before the relay
            // reports streaming, so readiness is awaited too (a CI run read "not ready (starting)").
            #expect(await eventually(timeout: .seconds(30)) { await LoopbackHTTP.get(port: port, path: "/readyz")?.status == 200 })
            let ready = await LoopbackHTTP.get(port: port, path: "/readyz")
            #expect(ready?.status == 200 && ready?.body.contains("slot \(ctx.slotName)_2 (shard 2/3)") == true, "\(ready?.body ?? "-")")
            let metrics = await LoopbackHTTP.get(port: port, path: "/metrics")?.body ?? ""
            #expect(metrics.contains("outbox_relay_shard{") && metrics.contains("shard=\"2\"") && metrics.contains("shards=\"3\""),
                    "\(metrics.split(separator: "\n").filter { $0.contains("shard") })")
            relays[1].signal(SIGKILL)
            _ = await relays[1].waitForExit()
            #expect(await eventually(timeout: .seconds(15)) { (try? await status().status) == 2 })
            let down = try await status()
            #expect(down.status == 2 && down.output.contains("shard 1/3 slot \(ctx.slotName)_1: confirmed") && down.output.contains("shard 1/3 has no active relay"),
                    "\(down.output)")
            for relay in [relays[0], third] { _ = await relay.terminate(timeout: .seconds(30)) }
        }
    }

    @Test("resharding 2 → 3 by the documented procedure, under ongoing writes: nothing lost, per-key order")
    func reshardUnderWrites() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: db)
            #expect(try await migrate(ctx, ["--shards", "2"]).status == 0)
            // No sweepers: a re-send could hide a row the procedure lost.
            let old = try (0..<2).map { try startShard(ctx, "\($0)/2", logName: "old-s\($0)") }
            for shard in 0..<2 { #expect(await waitUntilStreaming(db, "\(ctx.slotName)_\(shard)", timeout: .seconds(60))) }
            let load = LoadGenerator(url: ctx.databaseURL, keys: 60, pauseMicros: 2_000)
            try await Task.sleep(for: .seconds(3))
            // Refused while relays run, even with --reshard: their slots would be dropped under them.
            let busy = try await migrate(ctx, ["--shards", "3", "--reshard"])
            #expect(busy.status != 0 && busy.output.contains("stop every relay"), "\(busy.output)")

            // The procedure: 1. stop every relay (SIGTERM); 2. migrate --shards 3 --reshard;
            // 3. start one relay per new shard. Writers keep writing throughout.
            for relay in old { #expect(await relay.terminate(timeout: .seconds(30)) == 0) }
            try await Task.sleep(for: .seconds(1))
            let reshard = try await migrate(ctx, ["--shards", "3", "--reshard"])
            #expect(reshard.status == 0 && reshard.output.contains("dropped slots"), "\(reshard.output)")
            try await Task.sleep(for: .seconds(1))
            let new = try (0..<3).map { try startShard(ctx, "\($0)/3", logName: "new-s\($0)") }
            try await Task.sleep(for: .seconds(4))
            await load.stop()
            let last = try await oracle.lastChangeLSN(on: db)
            for shard in 0..<3 {
                #expect(try await eventually(timeout: .seconds(60)) {
                    (try await slotConfirmedLSN(db, slot: "\(ctx.slotName)_\(shard)")).map { $0 >= last } ?? false
                }, "new shard \(shard) never confirmed past \(last)")
            }
            let (check, _) = try await checkDelivery(db, oracle: oracle, bootstrapServers: ctx.bootstrapServers,
                                                     timeout: .seconds(90), idle: .seconds(4))
            print("SHARDS reshard 2 -> 3 under writes: \(check)")
            #expect(check.isClean, "\(check)")
            #expect(check.committed > 500, "too little load: \(check.committed)")
            let publications = try await db.query("SELECT pubname FROM pg_publication WHERE pubname LIKE 'outbox\\_pub\\_%' ORDER BY 1").rows.map { try $0.string("pubname") }
            #expect(publications == ["outbox_pub_0_of_3", "outbox_pub_1_of_3", "outbox_pub_2_of_3"], "\(publications)")
            for relay in new { #expect(await relay.terminate(timeout: .seconds(30)) == 0) }
            try await oracle.drop(on: db)
        }
    }
}
