import ArgumentParser
import EphemeralServers
import Foundation
import Logging
import Metrics
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
    @Option(name: .customLong("relay-binary"), help: "outbox-relay release binary (default: next to this one).") var relayBinary: String?
    @Option(help: "Where to write the JSON results.") var output = "bench-results.json"
    @Flag(name: .customLong("skip-slow-poller"), help: "Skip the 20 s-period polling relay latency runs.") var skipSlowPoller = false

    func run() async throws {
        MetricsSystem.bootstrap(CapturingMetrics.shared)
        LoggingSystem.bootstrap { label in var h = StreamLogHandler.standardError(label: label); h.logLevel = .error; return h }
        let binary = relayBinary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("outbox-relay").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ValidationError("outbox-relay binary not found at \(binary). Fix: swift build -c release, or pass --relay-binary.")
        }
        log("starting PostgreSQL 15 and Tansu …")
        let env = try await BenchEnvironment.start()
        var results = BenchResults(machine: MachineInfo.current(), rows: rows, largeRows: largeRows, runs: runs)
        do {
            try await measure(env, binary: binary, into: &results)
        } catch {
            await env.stop()
            throw error
        }
        await env.stop()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(results).write(to: URL(fileURLWithPath: output))
        print(results.markdown)
        log("wrote \(output)")
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

    private func measure(_ env: BenchEnvironment, binary: String, into r: inout BenchResults) async throws {
        log("drain \(rows) rows (1,000-row transactions)")
        r.drain["decode limit: pg_recvlogical → /dev/null"] = try await repeated("pg_recvlogical") {
            try await Contenders.decodeLimit(env, rows: rows, transactionRows: 1_000)
        }
        var rss: [Double] = []
        r.drain["outbox-relay, stream mode"] = try await repeated("relay stream") {
            let run = try await Contenders.relay(env, binary: binary, capture: .stream, rows: rows, transactionRows: 1_000)
            rss.append(Double(run.peakRSS))
            return run.rowsPerSecond
        }
        r.rss["drain \(rows) rows, stream"] = Sample(rss)
        rss = []
        r.drain["outbox-relay, notify mode"] = try await repeated("relay notify") {
            let run = try await Contenders.relay(env, binary: binary, capture: .notify, rows: rows, transactionRows: 1_000)
            rss.append(Double(run.peakRSS))
            return run.rowsPerSecond
        }
        r.rss["drain \(rows) rows, notify"] = Sample(rss)
        r.drain["polling relay (original design, 1,000-row batches)"] = try await repeated("polling") {
            try await env.backlog(slot: nil, rows: rows)
            let started = ContinuousClock.now
            let poller = try PollingRelay(env: env, period: .milliseconds(100))
            while poller.publishedCount < rows { try await Task.sleep(for: .milliseconds(10)) }
            let elapsed = ContinuousClock.now - started
            await poller.stop()
            return Double(rows) / seconds(elapsed)
        }
        r.drain["shell: pg_recvlogical | kcat"] = try await repeated("shell") {
            try await Contenders.shellPipeline(env, rows: rows, transactionRows: 1_000)
        }

        if largeRows > 0 {
            log("scaling: \(largeRows) rows")
            r.drainLarge["decode limit: pg_recvlogical → /dev/null"] = try await repeated("pg_recvlogical large") {
                try await Contenders.decodeLimit(env, rows: largeRows, transactionRows: 1_000)
            }
            rss = []
            r.drainLarge["outbox-relay, stream mode"] = try await repeated("relay large") {
                let run = try await Contenders.relay(env, binary: binary, capture: .stream, rows: largeRows, transactionRows: 1_000)
                rss.append(Double(run.peakRSS))
                return run.rowsPerSecond
            }
            r.rss["drain \(largeRows) rows, stream"] = Sample(rss)
            rss = []
            r.drainLarge["outbox-relay, one \(largeRows)-row transaction"] = try await repeated("relay one big txn") {
                let run = try await Contenders.relay(env, binary: binary, capture: .stream, rows: largeRows, transactionRows: largeRows)
                rss.append(Double(run.peakRSS))
                return run.rowsPerSecond
            }
            r.rss["one \(largeRows)-row transaction, stream"] = Sample(rss)
        }

        for rate in [1_000, 5_000] {
            log("latency at \(rate) rows/s")
            var relayRuns: [Percentiles] = [], pollRuns: [Percentiles] = []
            for _ in 0..<runs {
                relayRuns.append(try await LatencyBench.relay(env, rate: rate, duration: .seconds(latencySeconds)))
                pollRuns.append(try await LatencyBench.polling(env, period: .milliseconds(100), rate: rate, duration: .seconds(latencySeconds)))
            }
            r.latency["outbox-relay, stream @ \(rate)/s"] = LatencySummary(relayRuns)
            r.latency["polling relay, 100 ms @ \(rate)/s"] = LatencySummary(pollRuns)
        }
        if !skipSlowPoller {
            log("latency of the 20 s polling relay at 1000 rows/s")
            var slow: [Percentiles] = []
            for _ in 0..<runs {
                slow.append(try await LatencyBench.polling(env, period: .seconds(20), rate: 1_000, duration: .seconds(max(latencySeconds, 25))))
            }
            r.latency["polling relay, 20 s @ 1000/s"] = LatencySummary(slow)
        }

        log("NOTIFY trigger write cost (pgbench, 8 clients)")
        r.insertTPS["no trigger (stream mode)"] = try await repeated("pgbench no trigger") { try await TriggerCost.insertTPS(env, withTrigger: false, seconds: 5) }
        r.insertTPS["statement-level NOTIFY trigger (notify mode)"] = try await repeated("pgbench trigger") { try await TriggerCost.insertTPS(env, withTrigger: true, seconds: 5) }

        log("consumer throughput")
        let consumerRows = 20_000
        try await ConsumerBench.prepare(env, rows: consumerRows)
        r.effectsPerSecond["batched (256 per transaction)"] = try await repeated("consumer batched") {
            try await ConsumerBench.effectsPerSecond(env, rows: consumerRows, batchSize: 256)
        }
        r.effectsPerSecond["unbatched (1 per transaction)"] = try await repeated("consumer unbatched") {
            try await ConsumerBench.effectsPerSecond(env, rows: consumerRows, batchSize: 1)
        }
    }
}
