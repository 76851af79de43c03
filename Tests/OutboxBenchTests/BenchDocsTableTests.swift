import Foundation
@testable import OutboxBench
import Testing

@Suite("bench docs table: one results file, one table")
struct BenchDocsTableTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func two(_ a: Double, _ b: Double) -> Sample { Sample([a, b]) }

    /// A full two-run result, as `measure` leaves it.
    static func results() -> BenchResults {
        var r = BenchResults(machine: MachineInfo(cores: 2, memoryGiB: 24, kernel: "6.1.0", date: "2026-12-06T10:00:00Z"),
                             rows: 200_000, largeRows: 1_000_000, runs: 2)
        r.command = "outbox-bench --runs 2"
        r.server = ["shared_buffers": "256MB", "fsync": "off"]
        r.kafka = ["broker": "Tansu, one broker"]
        r.drain = ["decode limit: pg_recvlogical → file": two(100_000, 125_000), "outbox-relay, stream mode": two(150_000, 200_000)]
        r.drainLarge = ["decode limit: pg_recvlogical → file": two(100_000, 100_000),
                        "outbox-relay, stream mode": two(160_000, 170_000),
                        "outbox-relay, one 1000000-row transaction": two(110_000, 120_000)]
        r.rss = ["drain 200000 rows, stream": two(29 * 1_048_576, 30 * 1_048_576),
                 "drain 1000000 rows, stream": two(31 * 1_048_576, 31 * 1_048_576),
                 "one 1000000-row transaction, stream": two(33 * 1_048_576, 34 * 1_048_576)]
        func latency(_ p99: Sample) -> LatencySummary {
            var summary = LatencySummary([])
            summary.p99 = p99
            return summary
        }
        r.latency = ["outbox-relay, stream @ 1000/s": latency(two(3.5, 3.9)), "outbox-relay, stream @ 5000/s": latency(two(2.5, 2.9)),
                     "outbox-relay, stream @ 20000/s": latency(two(740, 1558)), "polling relay, 100 ms @ 1000/s": latency(two(100, 120))]
        r.captureLatency = ["outbox-relay, stream @ 5000/s": latency(two(0.62, 0.69))]
        r.effectsPerSecond = ["batched (default: 256 per transaction)": two(20_000, 24_000),
                              "batched (1024 per transaction)": two(46_199, 47_254), "unbatched (1 per transaction)": two(1_124, 1_243)]
        r.shards = ["1 shard": two(100_000, 100_000), "2 shards": two(40_000, 140_000)]
        r.computeRatios()
        return r
    }

    @Test("per-round ratios pair run i with the baseline's run i, not the medians")
    func perRound() {
        let r = Self.results()
        #expect(r.drainRatios["outbox-relay, stream mode"]?.runs == [1.5, 1.6])
        #expect(r.drainRatios["decode limit: pg_recvlogical → file"]?.median == 1)
        #expect(r.shardRatios["2 shards"]?.runs == [0.4, 1.4])
        let uneven = BenchResults.perRound(["decode limit": Self.two(1, 2), "x": Sample([3])], baselinePrefix: "decode limit")
        #expect(uneven["x"] == nil, "a contender missing a round has no per-round ratio")
    }

    @Test("each row states the figure, its median and range, the target and whether it is met")
    func rows() {
        let rows = BenchDocsTable.rows(Self.results())
        let expected: [BenchDocsTable.Row] = [
            .init(figure: "consumer, batched (default 256 per transaction), effects/s", value: "24000 (20000–24000)", target: "≥ 25000", met: "no"),
            .init(figure: "consumer, batched (1,024 per transaction), effects/s", value: "47254 (46199–47254)", target: "–", met: "–"),
            .init(figure: "consumer, unbatched, effects/s", value: "1243 (1124–1243)", target: "–", met: "–"),
            .init(figure: "peak RSS, 200k drain / 1M drain / one 1M-row transaction, MiB", value: "30.0 / 31.0 / 34.0", target: "≤ 32", met: "no"),
            .init(figure: "drain 200k, stream × pg_recvlogical, per round", value: "1.60 (1.50–1.60); 200.0k rows/s", target: "–", met: "–"),
            .init(figure: "drain 1M, stream × pg_recvlogical, per round", value: "1.70 (1.60–1.70); 170.0k rows/s", target: "–", met: "–"),
            .init(figure: "one 1M-row transaction × pg_recvlogical (1M backlog), per round", value: "1.20 (1.10–1.20)", target: "–", met: "–"),
            .init(figure: "one 1M-row transaction × 1M small-transaction drain (medians)", value: "0.71 (120.0k / 170.0k rows/s)",
                  target: "≥ 0.9", met: "no"),
            .init(figure: "commit→ack p99 / of which commit→capture (the database's share) @ 1,000 rows/s, ms", value: "3.90 (3.50–3.90) / –",
                  target: "–", met: "–"),
            .init(figure: "commit→ack p99 / of which commit→capture (the database's share) @ 5,000 rows/s, ms",
                  value: "2.90 (2.50–2.90) / 0.69 (0.62–0.69)", target: "≤ 3", met: "yes"),
            .init(figure: "commit→ack p99 / of which commit→capture (the database's share) @ 20,000 rows/s, ms", value: "1558 (740–1558) / –",
                  target: "≤ 5", met: "no"),
            .init(figure: "2 shards × 1 shard, same 200k backlog, per round", value: "1.40 (0.40–1.40)", target: "≥ 1.3", met: "yes"),
        ]
        #expect(rows.count == expected.count)
        for (row, want) in zip(rows, expected) { #expect(row == want) }
    }

    @Test("a section the run skipped reads 'not measured', and a target without a figure is not called met")
    func partialRun() {
        var r = Self.results()
        r.shards = [:]; r.shardRatios = [:]; r.effectsPerSecond = [:]
        let rows = BenchDocsTable.rows(r)
        #expect(rows.first == .init(figure: "consumer, batched (the default batch per transaction), effects/s", value: "not measured",
                                    target: "≥ 25000", met: "–"))
        #expect(rows.last == .init(figure: "2 shards × 1 shard, same 200k backlog, per round", value: "not measured", target: "≥ 1.3", met: "–"))
    }

    @Test("a run with --large-rows 0 names the skipped backlog, not a 0-row one")
    func largeSectionSkipped() {
        var r = Self.results()
        r.largeRows = 0; r.drainLarge = [:]; r.drainLargeRatios = [:]
        let figures = BenchDocsTable.rows(r).map(\.figure)
        #expect(figures.contains("drain large, stream × pg_recvlogical, per round"), "\(figures)")
        #expect(figures.contains("one large-row transaction × large small-transaction drain (medians)"), "\(figures)")
        #expect(!figures.contains { $0.contains("drain 0") || $0.contains(" 0-row") }, "\(figures)")
    }

    @Test("another server measured in the same run (--also-postgres) adds its drain and latency rows, named by version, without targets")
    func otherServer() throws {
        var r = Self.results()
        r.server["server_version"] = "15.14 (Debian 15.14-0+deb12u1)"
        var other = BenchResults(machine: r.machine, rows: 200_000, largeRows: 1_000_000, runs: 2)
        other.server = ["server_version": "18.1", "shared_buffers": "256MB"]
        other.drain = ["decode limit: pg_recvlogical → file": Self.two(100_000, 100_000), "outbox-relay, stream mode": Self.two(120_000, 130_000)]
        var latency = LatencySummary([])
        latency.p99 = Self.two(4, 6)
        other.latency = ["outbox-relay, stream @ 5000/s": latency]
        other.computeRatios()
        r.otherServers = [other]
        let rows = BenchDocsTable.rows(r)
        #expect(rows.suffix(2) == [
            .init(figure: "on PostgreSQL 18.1: drain 200k, stream × pg_recvlogical, per round", value: "1.30 (1.20–1.30); 130.0k rows/s",
                  target: "–", met: "–"),
            .init(figure: "on PostgreSQL 18.1: commit→ack p99 / of which commit→capture (the database's share) @ 5,000 rows/s, ms",
                  value: "6.00 (4.00–6.00) / –", target: "–", met: "–"),
        ])
        let block = BenchDocsTable.markdown(r)
        #expect(block.contains("- PostgreSQL 15.14: ") && block.contains("- PostgreSQL 18.1: `server_version=18.1`"), "\(block)")
        let decoded = try JSONDecoder().decode(BenchResults.self, from: JSONEncoder().encode(r))
        #expect(BenchDocsTable.markdown(decoded) == block)
    }

    @Test("a figure whose runs did not differ, or a single run, is its median alone", arguments: [
        (Sample([3.61, 3.01]), "%.2f", "3.61 (3.01–3.61)"), (Sample([68.5]), "%.1f", "68.5"), (Sample([1.5, 1.5]), "%.2f", "1.50"),
    ])
    func figures(sample: Sample, format: String, expected: String) {
        #expect(BenchDocsTable.figure(sample, format) == expected)
    }

    @Test("the block replaces exactly what lies between the markers, and a document without them is refused")
    func replacing() throws {
        let document = "# Benchmarks\nintro\n\(BenchDocsTable.begin)\nold table\n\(BenchDocsTable.end)\nafter\n"
        let replaced = try BenchDocsTable.replacing(in: document, with: "\(BenchDocsTable.begin)\nnew\n\(BenchDocsTable.end)\n")
        #expect(replaced == "# Benchmarks\nintro\n\(BenchDocsTable.begin)\nnew\n\(BenchDocsTable.end)\nafter\n")
        #expect(throws: BenchDocsTable.RenderError.self) { try BenchDocsTable.replacing(in: "# no markers\n", with: "x") }
    }

    @Test("results round-trip through JSON and render the same block, with the run's shard model when it has one")
    func jsonRoundTrip() throws {
        var r = Self.results()
        #expect(!BenchDocsTable.markdown(r).contains("Shard scaling model"))
        r.shardModel = "d = 1.80 µs, s = 3.50 µs"
        #expect(BenchDocsTable.markdown(r).contains("- Shard scaling model fitted in this run: d = 1.80 µs, s = 3.50 µs\n"))
        let decoded = try JSONDecoder().decode(BenchResults.self, from: JSONEncoder().encode(r))
        #expect(BenchDocsTable.markdown(decoded) == BenchDocsTable.markdown(r))
    }

    /// One source per figure: the committed table is what the committed JSON renders to. After
    /// a bench run, `bash scripts/bench --update-docs` rewrites both; by hand:
    /// `outbox-bench --render docs/bench/results.json --into docs/benchmarks.md`.
    @Test("docs/benchmarks.md's current table equals the rendering of docs/bench/results.json")
    func committedTableMatchesCommittedJSON() throws {
        let json = Self.root.appendingPathComponent("docs/bench/results.json")
        let results = try JSONDecoder().decode(BenchResults.self, from: Data(contentsOf: json))
        let document = try String(contentsOf: Self.root.appendingPathComponent("docs/benchmarks.md"), encoding: .utf8)
        let expected = try BenchDocsTable.replacing(in: document, with: BenchDocsTable.markdown(results))
        #expect(document == expected, """
            docs/benchmarks.md's generated table differs from docs/bench/results.json. Fix: \
            outbox-bench --render docs/bench/results.json --into docs/benchmarks.md. Expected block:
            \(BenchDocsTable.markdown(results))
            """)
    }
}
