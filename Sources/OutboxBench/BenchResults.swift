import Foundation

struct LatencySummary: Codable {
    /// p99 is the figure the docs table reports; p50, p99.9 and the sample count are
    /// optional so that a results file written by hand (the first docs/bench/results.json,
    /// seeded from figures that named only p99) states nothing it does not know.
    var p50: Sample?, p99: Sample, p999: Sample?, samples: Int?
    init(_ runs: [Percentiles]) {
        p50 = Sample(runs.map(\.p50)); p99 = Sample(runs.map(\.p99)); p999 = Sample(runs.map(\.p999))
        samples = runs.map(\.count).reduce(0, +)
    }
}

struct MachineInfo: Codable {
    var cores: Int, memoryGiB: Double, kernel: String, date: String
    static func current() -> MachineInfo {
        let kernel = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
        return MachineInfo(cores: ProcessInfo.processInfo.activeProcessorCount,
                           memoryGiB: Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30), kernel: kernel,
                           date: ISO8601DateFormatter().string(from: Date()))
    }
}

struct BenchResults: Codable {
    var machine: MachineInfo
    /// The command line that produced these results (`outbox-bench …`).
    var command: String?
    /// Free text from `--note` (e.g. the commit the binaries were built at), or, in a file
    /// written by hand, where its figures came from.
    var note: String?
    /// PostgreSQL's settings for the run (`BenchEnvironment.serverSettings`).
    var server: [String: String] = [:]
    /// The broker side: topic partitions and the relays' librdkafka overrides.
    var kafka: [String: String] = [:]
    var rows: Int, largeRows: Int, runs: Int
    var drain: [String: Sample] = [:]
    var drainLarge: [String: Sample] = [:]
    var rss: [String: Sample] = [:]
    var latency: [String: LatencySummary] = [:]
    /// Commit → the relay reading the Commit, per transaction: the database's share of
    /// `latency` (walsender wake-up, decoding, loopback); the rest is producer and broker.
    var captureLatency: [String: LatencySummary] = [:]
    var insertTPS: [String: Sample] = [:]
    var effectsPerSecond: [String: Sample] = [:]
    /// Sharded capture: rows/s by shard count ("1 shard", "2 shards"), run i of each side by side.
    var shards: [String: Sample] = [:]
    /// Per run: where the CPU went (walsenders, relays, broker).
    var shardProfiles: [String] = []
    /// `ShardScalingModel` fitted to this run's walsender CPU.
    var shardModel: String?
    /// Per-round ratios, each run against the run of its baseline measured in the same
    /// round (`BenchResults.perRound`): drain contenders against the decode limit, shard
    /// counts against 1 shard. Stored with the results, so the docs table and the printed
    /// tables (bench-results/results.md) read the ratio rather than recompute it.
    var drainRatios: [String: Sample] = [:]
    var drainLargeRatios: [String: Sample] = [:]
    var shardRatios: [String: Sample] = [:]
    /// The drain and latency sections again, in the same run, on other PostgreSQL servers
    /// (`--also-postgres`, e.g. 18 beside 15): each with its own settings and baselines.
    var otherServers: [BenchResults]?

    init(machine: MachineInfo, rows: Int, largeRows: Int, runs: Int) {
        self.machine = machine; self.rows = rows; self.largeRows = largeRows; self.runs = runs
    }

    /// Each run of `table` against the same round's run of the entry whose name starts with
    /// `baselinePrefix`; entries without a baseline run for every round are left out.
    static func perRound(_ table: [String: Sample], baselinePrefix: String) -> [String: Sample] {
        guard let base = table.first(where: { $0.key.hasPrefix(baselinePrefix) })?.value else { return [:] }
        var out: [String: Sample] = [:]
        for (name, sample) in table where !sample.runs.isEmpty && sample.runs.count == base.runs.count {
            out[name] = Sample(zip(sample.runs, base.runs).map { $0 / $1 })
        }
        return out
    }

    /// Fills the per-round ratios from the measured runs (after `measure`).
    /// "PostgreSQL 18.1", from the recorded `server_version`.
    var serverName: String { "PostgreSQL" + (server["server_version"]?.split(separator: " ").first.map { " " + $0 } ?? "") }

    mutating func computeRatios() {
        drainRatios = Self.perRound(drain, baselinePrefix: "decode limit")
        drainLargeRatios = Self.perRound(drainLarge, baselinePrefix: "decode limit")
        shardRatios = Self.perRound(shards, baselinePrefix: "1 shard")
    }

    var markdown: String {
        var out = "Machine: \(machine.cores) cores, \(String(format: "%.0f", machine.memoryGiB)) GiB, Linux \(machine.kernel), \(machine.date). Median of \(runs) runs (min–max).\n\n"
        if !server.isEmpty {
            out += "PostgreSQL: " + server.sorted { $0.key < $1.key }.map { "`\($0.key)=\($0.value)`" }.joined(separator: ", ") + "\n\n"
        }
        if !kafka.isEmpty {
            out += "Kafka: " + kafka.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ") + "\n\n"
        }
        func drainTable(_ title: String, _ table: [String: Sample], ratios: [String: Sample], rows: Int) {
            // Contenders run round-robin, so run i of each was measured next to run i of the
            // decode limit: the ratio is taken per round, then summarised.
            out += "**\(title)** (\(rows) rows of ~230 B; one backlog per round, a slot per contender; steady drain: first output to last row)\n\n| contender | rows/s | × decode limit, per round |\n| --- | ---: | ---: |\n"
            for (name, sample) in table.sorted(by: { $0.value.median > $1.value.median }) {
                out += "| \(name) | \(sample.text()) | \(ratios[name]?.text("%.2f") ?? "-") |\n"
            }
            out += "\n"
        }
        drainTable("Backlog drain", drain, ratios: drainRatios, rows: rows)
        if !drainLarge.isEmpty { drainTable("Scaling", drainLarge, ratios: drainLargeRatios, rows: largeRows) }
        out += "**Peak RSS of the relay process**\n\n| run | MiB |\n| --- | ---: |\n"
        for (name, sample) in rss.sorted(by: { $0.key < $1.key }) {
            out += "| \(name) | \(Sample(sample.runs.map { $0 / 1_048_576 }).text("%.1f")) |\n"
        }
        out += "\n**Commit → Kafka ack latency** (ms)\n\n| relay @ rate | p50 | p99 | p99.9 | samples |\n| --- | ---: | ---: | ---: | ---: |\n"
        for (name, l) in latency.sorted(by: { $0.key < $1.key }) {
            out += "| \(name) | \(l.p50?.text("%.2f") ?? "-") | \(l.p99.text("%.2f")) | \(l.p999?.text("%.2f") ?? "-") | \(l.samples.map(String.init) ?? "-") |\n"
        }
        if !captureLatency.isEmpty {
            out += "\n**Commit → relay reads the Commit** (ms, per transaction: the database's share of the above)\n\n| relay @ rate | p50 | p99 | p99.9 | transactions |\n| --- | ---: | ---: | ---: | ---: |\n"
            for (name, l) in captureLatency.sorted(by: { $0.key < $1.key }) {
                out += "| \(name) | \(l.p50?.text("%.2f") ?? "-") | \(l.p99.text("%.2f")) | \(l.p999?.text("%.2f") ?? "-") | \(l.samples.map(String.init) ?? "-") |\n"
            }
        }
        // Setups run round-robin: the ratio is taken per round against that round's baseline.
        let insertRatios = Self.perRound(insertTPS, baselinePrefix: "no trigger")
        out += "\n**Write path: single-row INSERT tps, 8 pgbench clients, 10 s, a relay draining**\n\n| outbox table | tps | × no trigger, per round |\n| --- | ---: | ---: |\n"
        for (name, s) in insertTPS.sorted(by: { $0.value.median > $1.value.median }) {
            out += "| \(name) | \(s.text()) | \(insertRatios[name]?.text("%.2f") ?? "-") |\n"
        }
        out += "\n**Consumer throughput** (effects/s, one consumer)\n\n| mode | effects/s |\n| --- | ---: |\n"
        for (name, s) in effectsPerSecond.sorted(by: { $0.value.median > $1.value.median }) { out += "| \(name) | \(s.text()) |\n" }
        if !shards.isEmpty {
            out += "\n**Sharded capture** (\(rows) rows of ~230 B, shard relays as separate processes)\n\n| shard relays | rows/s | × 1 shard, per round |\n| --- | ---: | ---: |\n"
            func count(_ label: String) -> Int { Int(label.prefix { $0.isNumber }) ?? 0 }
            for (name, s) in shards.sorted(by: { count($0.key) < count($1.key) }) {
                out += "| \(name) | \(s.text()) | \(shardRatios[name]?.text("%.2f") ?? "-") |\n"
            }
            out += "\nCPU per run:\n\n" + shardProfiles.map { "- \($0)\n" }.joined()
            if let shardModel { out += "\n**Model for more cores:** \(shardModel)\n" }
        }
        for other in otherServers ?? [] {
            out += "\n---\n\n### The same run on \(other.serverName)\n\n" + other.markdown
        }
        return out
    }
}
