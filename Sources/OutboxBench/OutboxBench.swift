import ArgumentParser
import Consumers
import EphemeralServers
import Foundation
import KafkaClient
import Logging
import Metrics
import PGOutput
import Relay

/// Benchmarks the relay against the decode limit and the alternatives, side by side on
/// the same throwaway servers in one run. Prints a markdown table (stdout) and writes JSON.
@main
struct OutboxBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox-bench",
        abstract: "Drain rate, commit→ack latency, relay memory, NOTIFY write cost and consumer throughput, with ratios against pg_recvlogical measured in the same run.")

    @Option(help: "Runs per figure (the median is reported, with min and max).") var runs = 3
    @Option(help: "Backlog rows for the drain comparison.") var rows = 200_000
    @Option(name: .customLong("large-rows"), help: "Backlog rows for the scaling run and the single big transaction (0 skips).") var largeRows = 1_000_000
    @Option(name: .customLong("latency-seconds"), help: "Length of each latency run.") var latencySeconds = 10
    @Option(name: .customLong("latency-rates"), parsing: .upToNextOption,
            help: "Rates (rows/s) of the stream-mode latency runs; the polling relay runs at those up to 5000.")
    var latencyRates: [Int] = [1_000, 5_000, 20_000]
    @Option(name: .customLong("relay-binary"), help: "outbox-relay release binary (default: next to this one).") var relayBinary: String?
    @Option(help: "Where to write the JSON results.") var output = "bench-results.json"
    @Option(help: "Free text stored with the results (e.g. the commit the binaries were built at).") var note: String?
    @Option(name: .customLong("render"),
            help: "Measure nothing: read this results JSON and print the docs table made from it (docs/benchmarks.md's current table).")
    var renderFrom: String?
    @Option(name: .customLong("into"),
            help: "With --render: replace the generated table in this Markdown file instead of printing it.")
    var renderInto: String?
    @Flag(name: .customLong("skip-trickle"), help: "Skip the 10 rows/s trickle latency runs (stream and notify mode, 30 s each).") var skipTrickle = false
    @Flag(name: .customLong("skip-slow-poller"), help: "Skip the 20 s-period polling relay latency runs.") var skipSlowPoller = false
    @Option(name: .customLong("kafka-property"), help: "A librdkafka property for every relay under test, key=value (repeatable), e.g. linger.ms=0.")
    var kafkaProperties: [String] = []
    @Option(name: .customLong("shard-counts"), parsing: .upToNextOption,
            help: "Shard counts of the shards section, each against 1 shard (default 2); three or more counts fit the scaling model better.")
    var shardCounts: [Int] = [2]
    @Option(help: "Partitions of the relays' topic (BENCH), all led by the one broker (4: what Tansu's auto-creation gave earlier runs).")
    var partitions = 4
    @Option(help: "Only these sections, comma-separated: drain, notify, alternatives, large, latency, trigger, consumer, shards (default: all).")
    var only: String?
    @Option(name: .customLong("also-postgres"),
            help: "Another PostgreSQL server's bin directory (repeatable), e.g. /opt/outbox-relay/postgresql-18/server-bin: after the first server (OUTBOX_PG_BIN, or Debian's 15), the drain and latency sections of this run measure again on it, each server against its own pg_recvlogical.")
    var alsoPostgres: [String] = []

    /// The sections measured on the `--also-postgres` servers: what differs by server.
    static let versionSections: Set<String> = ["drain", "latency"]

    func validate() throws {
        if renderFrom == nil, renderInto != nil { throw ValidationError("--into needs --render RESULTS.json.") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1.") }
        guard rows >= 1_000 else { throw ValidationError("--rows must be at least 1000.") }
        guard shardCounts.allSatisfy({ (2...16).contains($0) }) else { throw ValidationError("--shard-counts takes counts from 2 to 16 (1 shard always runs, as the baseline).") }
        guard (1...1_000).contains(partitions) else { throw ValidationError("--partitions takes 1 to 1000.") }
        guard latencyRates.allSatisfy({ (10...100_000).contains($0) }) else { throw ValidationError("--latency-rates takes rates from 10 to 100000 rows/s.") }
        for directory in alsoPostgres where !FileManager.default.isExecutableFile(atPath: directory + "/postgres") {
            throw ValidationError("--also-postgres \(directory) has no postgres binary. Fix: name a server's bin directory (scripts/setup installs 18 in /opt/outbox-relay/postgresql-18/server-bin).")
        }
        for property in kafkaProperties where !property.contains("=") {
            throw ValidationError("--kafka-property \(property) is not key=value.")
        }
        if let unknown = sections.subtracting(Self.allSections).first {
            throw ValidationError("--only: unknown section \(unknown); expected some of \(Self.allSections.sorted().joined(separator: ", ")).")
        }
    }

    var relayKafkaProperties: [String: String] {
        var out: [String: String] = [:]
        for property in kafkaProperties {
            let parts = property.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { out[parts[0]] = parts[1] }
        }
        return out
    }

    static let allSections: Set<String> = ["drain", "notify", "alternatives", "large", "latency", "trigger", "consumer", "shards"]
    var sections: Set<String> {
        guard let only else { return Self.allSections }
        return Set(only.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    func run() async throws {
        if let renderFrom {
            try BenchDocsTable.render(resultsAt: renderFrom, into: renderInto)
            return
        }
        MetricsSystem.bootstrap(CapturingMetrics.shared)
        LoggingSystem.bootstrap { label in var h = StreamLogHandler.standardError(label: label); h.logLevel = .error; return h }
        let binary = relayBinary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("outbox-relay").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ValidationError("outbox-relay binary not found at \(binary). Fix: swift build -c release, or pass --relay-binary.")
        }
        var results = try await measure(on: nil, sections: sections, binary: binary)
        results.command = (["outbox-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        results.note = note
        let versionSections = sections.intersection(Self.versionSections)
        if !alsoPostgres.isEmpty, !versionSections.isEmpty {
            var others: [BenchResults] = []
            for directory in alsoPostgres { others.append(try await measure(on: directory, sections: versionSections, binary: binary)) }
            results.otherServers = others
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(results).write(to: URL(fileURLWithPath: output))
        print(results.markdown)
        log("wrote \(output)")
    }

    /// Starts a server (`postgresBinDir`, nil: the default one) and a broker, measures
    /// `sections` on them, and stops them.
    private func measure(on postgresBinDir: String?, sections: Set<String>, binary: String) async throws -> BenchResults {
        log("starting PostgreSQL (\(postgresBinDir ?? "the default server")) and Tansu …")
        var env = try await BenchEnvironment.start(partitions: partitions, postgresBinDir: postgresBinDir)
        env.relayKafkaProperties = relayKafkaProperties
        var results = BenchResults(machine: MachineInfo.current(), rows: rows, largeRows: largeRows, runs: runs)
        do {
            try await measure(env, sections: sections, binary: binary, into: &results)
        } catch {
            await env.stop()
            throw error
        }
        await env.stop()
        results.computeRatios()
        log("measured on \(results.serverName)")
        return results
    }

    private func repeated(_ label: String, _ body: () async throws -> Double) async throws -> Sample {
        var values: [Double] = []
        for run in 1...runs {
            let value = try await body()
            log("  \(label) run \(run): \(String(format: "%.1f", value))")
            values.append(value)
        }
        return Sample(values)
    }

    /// The rows a drain contender drains: `rows` rows in `transactionRows`-row transactions.
    private struct Backlog: Hashable {
        var rows: Int
        var transactionRows: Int = 1_000
    }

    /// One drain contender: a label, the backlog it drains, the slot it drains it from (nil:
    /// it reads the table), and a run that returns rows/s and, for our relay, peak RSS.
    private struct Contender {
        var label: String
        var rssLabel: String?
        var backlog: Backlog
        var slot: BenchSlot?
        var run: (_ end: LSN) async throws -> (rowsPerSecond: Double, peakRSS: Int?)
    }

    /// Runs the contenders round-robin, `runs` rounds, so the decode limit and each relay
    /// see the same machine noise; records medians, and peak RSS where reported. In each
    /// round, contenders of one backlog shape share one backlog (built after all their
    /// slots exist), so they decode the same WAL.
    private func interleaved(_ env: BenchEnvironment, _ contenders: [Contender], into table: inout [String: Sample], rss: inout [String: Sample]) async throws {
        var rates: [String: [Double]] = [:], peaks: [String: [Double]] = [:]
        var shapes: [Backlog] = []
        for contender in contenders where !shapes.contains(contender.backlog) { shapes.append(contender.backlog) }
        for round in 1...runs {
            for shape in shapes {
                let group = contenders.filter { $0.backlog == shape }
                let end = try await env.backlog(slots: group.compactMap(\.slot), rows: shape.rows, transactionRows: shape.transactionRows)
                for contender in group {
                    let result = try await contender.run(end)
                    log("  \(contender.label) run \(round): \(String(format: "%.0f", result.rowsPerSecond)) rows/s"
                        + (result.peakRSS.map { String(format: ", peak RSS %.1f MiB", Double($0) / 1_048_576) } ?? ""))
                    rates[contender.label, default: []].append(result.rowsPerSecond)
                    if let label = contender.rssLabel, let peak = result.peakRSS { peaks[label, default: []].append(Double(peak)) }
                }
            }
        }
        for (label, values) in rates { table[label] = Sample(values) }
        for (label, values) in peaks { rss[label] = Sample(values) }
    }

    private func measure(_ env: BenchEnvironment, sections: Set<String>, binary: String, into r: inout BenchResults) async throws {
        r.server = try await env.serverSettings()
        r.kafka = ["broker": "Tansu, one broker", "BENCH partitions": String(partitions),
                   "relay properties": env.relayKafkaProperties.isEmpty ? "the relay's defaults"
                       : env.relayKafkaProperties.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ",")]
        let decodeLimit = "decode limit: pg_recvlogical → file"
        func limit(_ rows: Int) -> Contender {
            let slot = BenchSlot(name: "bench_decode")
            return Contender(label: decodeLimit, backlog: Backlog(rows: rows), slot: slot) { end in
                (try await Contenders.decodeLimit(env, slot: slot.name, rows: rows, end: end), nil)
            }
        }
        func relay(_ label: String, rssLabel: String, _ capture: CaptureMode, rows: Int, transactionRows: Int) -> Contender {
            let slot = BenchSlot(name: "bench_relay_\(capture.rawValue)_\(transactionRows)")
            return Contender(label: label, rssLabel: rssLabel, backlog: Backlog(rows: rows, transactionRows: transactionRows), slot: slot) { _ in
                let run = try await Contenders.relay(env, binary: binary, capture: capture, slot: slot.name, rows: rows,
                                                     clockFromStreaming: transactionRows >= rows)
                return (run.rowsPerSecond, run.peakRSS)
            }
        }

        let serverDecodeSlot = BenchSlot(name: "bench_server_decode")
        var drain: [Contender] = [limit(rows), Contender(label: "reference: server-side decode, SQL count of the slot's changes",
                                                         backlog: Backlog(rows: rows), slot: serverDecodeSlot) { _ in
            (try await Contenders.serverSideDecode(env, slot: serverDecodeSlot.name, rows: rows), nil)
        }]
        if sections.contains("drain") {
            drain.append(relay("outbox-relay, stream mode", rssLabel: "drain \(rows) rows, stream", .stream, rows: rows, transactionRows: 1_000))
        }
        if sections.contains("notify") {
            drain.append(relay("outbox-relay, notify mode", rssLabel: "drain \(rows) rows, notify", .notify, rows: rows, transactionRows: 1_000))
        }
        if sections.contains("alternatives") {
            let shellSlot = BenchSlot(name: "bench_shell", plugin: "test_decoding")
            drain.append(Contender(label: "shell: pg_recvlogical piped into kcat", backlog: Backlog(rows: rows), slot: shellSlot) { end in
                (try await Contenders.shellPipeline(env, slot: shellSlot.name, rows: rows, end: end), nil)
            })
            // Last in its round: it marks the rows it publishes, which the slots never see.
            drain.append(Contender(label: "polling relay (original design, 1,000-row batches)", backlog: Backlog(rows: rows), slot: nil) { _ in
                let started = ContinuousClock.now
                let poller = try PollingRelay(env: env, period: .milliseconds(100))
                while poller.publishedCount < rows { try await Task.sleep(for: .milliseconds(10)) }
                let elapsed = ContinuousClock.now - started
                await poller.stop()
                return (Double(rows) / seconds(elapsed), nil)
            })
        }
        if drain.count > 2 {  // the two references alone compare nothing
            log("drain \(rows) rows (1,000-row transactions), \(runs) interleaved rounds")
            try await interleaved(env, drain, into: &r.drain, rss: &r.rss)
        }

        if sections.contains("shards") {
            let counts = [1] + Array(Set(shardCounts)).sorted()
            log("sharded capture: \(rows) rows, 1 shard relay against \(counts.dropFirst().map(String.init).joined(separator: ", ")), \(runs) interleaved rounds")
            var rates: [Int: [Double]] = [:]
            var walsenderMicros: [Int: [Double]] = [:]
            for round in 1...runs {
                for count in counts {
                    let (rate, profile) = try await ShardBench.drain(env, binary: binary, shards: count, rows: rows)
                    log("  \(count) shard(s) run \(round): \(String(format: "%.0f", rate)) rows/s")
                    rates[count, default: []].append(rate)
                    r.shardProfiles.append("\(count) shard(s), round \(round): \(profile.text)")
                    if let perRow = profile.walsenderMicrosPerWALRow(rows: rows) { walsenderMicros[count, default: []].append(perRow) }
                }
            }
            for (count, values) in rates { r.shards[count == 1 ? "1 shard" : "\(count) shards"] = Sample(values) }
            // The mean of the rounds: with two rounds a median would be the larger of them.
            let measured = walsenderMicros.mapValues { $0.reduce(0, +) / Double($0.count) }
            let model = ShardScalingModel(perWalsenderMicros: measured)?.text(measured: measured)
                ?? "no scaling model: the walsenders' CPU did not separate decoding from shipping in this run"
            r.shardModel = model
            log("  model: \(model)")
        }

        if largeRows > 0 && sections.contains("large") {
            log("scaling: \(largeRows) rows, and one \(largeRows)-row transaction")
            try await interleaved(env, [
                limit(largeRows),
                relay("outbox-relay, stream mode", rssLabel: "drain \(largeRows) rows, stream", .stream, rows: largeRows, transactionRows: 1_000),
                relay("outbox-relay, one \(largeRows)-row transaction", rssLabel: "one \(largeRows)-row transaction, stream", .stream,
                      rows: largeRows, transactionRows: largeRows),
            ], into: &r.drainLarge, rss: &r.rss)
        }

        if sections.contains("latency") {
            for rate in latencyRates {
                log("latency at \(rate) rows/s")
                // The polling relay's figure is a reference at the rates it sustains; past
                // 5,000 rows/s it only measures its backlog.
                let withPoller = rate <= 5_000
                var relayRuns: [Percentiles] = [], captureRuns: [Percentiles] = [], pollRuns: [Percentiles] = []
                for _ in 0..<runs {
                    let measured = try await LatencyBench.relay(env, load: RateLoad(rate: rate), rate: rate, duration: .seconds(latencySeconds))
                    relayRuns.append(measured.ack)
                    captureRuns.append(measured.capture)
                    if withPoller {
                        pollRuns.append(try await LatencyBench.polling(env, period: .milliseconds(100), rate: rate, duration: .seconds(latencySeconds)))
                    }
                }
                r.latency["outbox-relay, stream @ \(rate)/s"] = LatencySummary(relayRuns)
                r.captureLatency["outbox-relay, stream @ \(rate)/s"] = LatencySummary(captureRuns)
                if withPoller { r.latency["polling relay, 100 ms @ \(rate)/s"] = LatencySummary(pollRuns) }
            }
            var trickle: [CaptureMode: [Percentiles]] = [:]
            if !skipTrickle { log("latency at a trickle (10 rows/s, random gaps), stream and notify mode") }
            for _ in 0..<(skipTrickle ? 0 : runs) {
                for capture in [CaptureMode.stream, .notify] {
                    trickle[capture, default: []].append(try await LatencyBench.relay(env, capture: capture, load: .trickle, rate: 10,
                                                                                      duration: .seconds(max(latencySeconds, 30))).ack)
                }
            }
            for (capture, runs) in trickle { r.latency["outbox-relay, \(capture.rawValue) @ 10/s (trickle)"] = LatencySummary(runs) }
            if !skipSlowPoller {
                log("latency of the 20 s polling relay at 1000 rows/s")
                var slow: [Percentiles] = []
                for _ in 0..<runs {
                    slow.append(try await LatencyBench.polling(env, period: .seconds(20), rate: 1_000, duration: .seconds(max(latencySeconds, 25))))
                }
                r.latency["polling relay, 20 s @ 1000/s"] = LatencySummary(slow)
            }
        }

        if sections.contains("trigger") {
            log("NOTIFY trigger write cost (pgbench, 8 clients, a relay draining), \(runs) interleaved rounds")
            var tps: [TriggerCost.Setup: [Double]] = [:]
            for round in 1...runs {
                for setup in TriggerCost.Setup.allCases {
                    let measured = try await TriggerCost.insertTPS(env, setup, seconds: 10)
                    log("  round \(round): \(setup.rawValue): \(Int(measured)) tps")
                    tps[setup, default: []].append(measured)
                }
            }
            for (setup, runs) in tps { r.insertTPS[setup.rawValue] = Sample(runs) }
        }
        guard sections.contains("consumer") else { return }

        log("consumer throughput")
        // The default batch size beside 256 and 1,024, round-robin within each round, so that
        // whatever drifts over the section (autovacuum after the prepared rows, the host)
        // does not favour the size measured first. Enough rows that a batched run takes
        // seconds even with 1,024-message batches; the unbatched consumer (about 1,000/s) is
        // timed over its first 10,000 effects.
        let consumerRows = 100_000
        try await ConsumerBench.prepare(env, rows: consumerRows)
        let defaultBatch = ConsumerConfiguration(databaseURL: "", kafka: KafkaConfiguration(bootstrapServers: "")).batchSize
        let sizes = Set([defaultBatch, 256, 1_024]).sorted()
        var batched: [Int: [Double]] = [:]
        for run in 1...runs {
            for size in sizes {
                let value = try await ConsumerBench.effectsPerSecond(env, rows: consumerRows, batchSize: size)
                log("  consumer batched, \(size) per transaction, run \(run): \(String(format: "%.1f", value))")
                batched[size, default: []].append(value)
            }
        }
        for (size, values) in batched {
            r.effectsPerSecond["batched (\(size == defaultBatch ? "default: " : "")\(size) per transaction)"] = Sample(values)
        }
        r.effectsPerSecond["unbatched (1 per transaction)"] = try await repeated("consumer unbatched") {
            try await ConsumerBench.effectsPerSecond(env, rows: 10_000, batchSize: 1)
        }
    }
}
