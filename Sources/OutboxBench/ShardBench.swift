import EphemeralServers
import Foundation
import PGOutput
import PostgresClient
import Relay

/// Sharded capture: the same backlog drained by one shard relay and by N shard relays
/// (real processes, `run --shard I/N`), timed from their start to the last broker
/// acknowledgement summed over their /metrics. One shard runs the same code path as N
/// (`--shard 0/1`, a row filter that keeps every row), so the ratio is the sharding alone.
enum ShardBench {
    static let slotBase = "bench_shard"
    /// Not `outbox_pub`: the unsharded contenders of the other sections must not see a
    /// sharded database (they would refuse to start).
    static let publicationBase = "bench_pub"

    /// Where the CPU went during one drain, in CPU seconds (a coarse profile from
    /// /proc/<pid>/stat): PostgreSQL's walsenders, the relay processes and the broker.
    struct Profile: Codable {
        var elapsed: Double, walsenders: [Double], relays: [Double], broker: Double
        var text: String {
            func list(_ values: [Double]) -> String { values.map { String(format: "%.2f", $0) }.joined(separator: " + ") }
            let busy = walsenders.reduce(0, +) + relays.reduce(0, +) + broker
            return String(format: "%.2f s: walsenders %@, relays %@, broker %.2f CPU s; %.2f of %d cores busy (these three)",
                          elapsed, list(walsenders), list(relays), broker, busy / elapsed, ProcessInfo.processInfo.activeProcessorCount)
        }

        /// One walsender's CPU per row of the backlog's WAL, in µs (their mean: each decodes
        /// all of it). Nil when no walsender was found.
        func walsenderMicrosPerWALRow(rows: Int) -> Double? {
            guard !walsenders.isEmpty, rows > 0 else { return nil }
            return walsenders.reduce(0, +) / Double(walsenders.count) / Double(rows) * 1e6
        }
    }

    static func drain(_ env: BenchEnvironment, binary: String, shards: Int, rows: Int) async throws -> (rowsPerSecond: Double, profile: Profile) {
        _ = try await ShardMigration.apply(on: env.db, count: shards, reshard: true, slotBase: slotBase, publicationBase: publicationBase)
        // Slots before the backlog, so the relays stream it (they adopt slots made by hand).
        try await env.db.query("TRUNCATE outbox")
        for shard in 0..<shards {
            try await env.db.query("DELETE FROM outbox_relay_slot WHERE slot_name = $1", [.text("\(slotBase)_\(shard)")])
            try await env.db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text("\(slotBase)_\(shard)")])
        }
        try await env.backlog(slot: nil, rows: rows, truncate: false)
        let ports = (0..<shards).map { _ in freeLoopbackPort() }
        let brokerBefore = cpuSeconds(pid: env.broker.pid) ?? 0
        let started = ContinuousClock.now
        let processes = try (0..<shards).map { shard in
            try ChildProcess([binary, "run", "--database-url", env.databaseURL, "--kafka-bootstrap-servers", env.broker.bootstrapServers,
                              "--slot", slotBase, "--shard", "\(shard)/\(shards)", "--set", "publication=\(publicationBase)",
                              "--http-port", String(ports[shard]), "--log-level", "warning",
                              "--set", "sweeper=false", "--set", "spill-dir=\(NSTemporaryDirectory())"]
                             + (env.relayKafkaProperties.isEmpty ? [] : ["--kafka-properties",
                                env.relayKafkaProperties.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ",")]),
                             outputPath: tempPath("relay-shard-\(shard)-of-\(shards).log"))
        }
        var published = Array(repeating: 0, count: shards)
        let deadline = ContinuousClock.now + .seconds(600)
        while published.reduce(0, +) < rows {
            guard ContinuousClock.now < deadline else {
                for process in processes { process.signal(SIGKILL) }
                throw BenchError("\(shards) shard relays did not drain within 600 s (\(published) of \(rows))")
            }
            try await Task.sleep(for: .milliseconds(10))
            for (shard, port) in ports.enumerated() {
                published[shard] = await scrapeCounter(port: port, name: "outbox_relay_events_published_total") ?? published[shard]
            }
        }
        let elapsed = ContinuousClock.now - started
        // Walsenders and relays live exactly as long as the run so far: their totals are its cost.
        let walsenderPIDs = try await env.db.query("SELECT pid FROM pg_stat_replication").rows.map { Int32(try $0.int("pid")) }
        let profile = Profile(elapsed: seconds(elapsed), walsenders: walsenderPIDs.compactMap { cpuSeconds(pid: $0) },
                              relays: processes.compactMap { cpuSeconds(pid: $0.pid) },
                              broker: (cpuSeconds(pid: env.broker.pid) ?? 0) - brokerBefore)
        for process in processes { process.signal(SIGTERM) }
        for process in processes {
            guard let status = await process.waitForExit(timeout: .seconds(60)), status == 0 else {
                process.signal(SIGKILL)
                throw BenchError("a shard relay did not stop cleanly after SIGTERM: \(process.output.suffix(800))")
            }
        }
        log("    \(shards) shard(s): rows per shard \(published); profile \(profile.text)")
        return (Double(rows) / seconds(elapsed), profile)
    }
}
