import Foundation

/// The current table of docs/benchmarks.md, made from one results file
/// (docs/bench/results.json), so that every figure in it has one source. `scripts/bench
/// --update-docs` copies a run's results there and calls `outbox-bench --render … --into …`;
/// a test renders the committed JSON and expects the committed table.
///
/// Pure: the rows and the "met" verdicts are functions of `BenchResults`, and the targets are
/// the open performance targets (issue "Scale out past one walsender"), written once here.
enum BenchDocsTable {
    static let begin = "<!-- bench-table:begin (generated: outbox-bench --render docs/bench/results.json --into docs/benchmarks.md) -->"
    static let end = "<!-- bench-table:end -->"

    /// A target a figure is held against: at least or at most `value`.
    struct Target {
        enum Direction { case atLeast, atMost }
        var direction: Direction
        var value: Double

        var text: String { (direction == .atLeast ? "≥ " : "≤ ") + BenchDocsTable.number(value) }
        func met(by median: Double) -> Bool { direction == .atLeast ? median >= value : median <= value }
    }

    struct Row: Equatable {
        var figure: String
        var value: String
        var target: String
        /// "yes", "no", "–" (no target) or "not measured".
        var met: String
    }

    enum RenderError: Error, CustomStringConvertible {
        case markersMissing(String)
        var description: String {
            switch self {
            case .markersMissing(let file):
                "\(file) has no generated-table markers. Fix: put the lines\n\(BenchDocsTable.begin)\n\(BenchDocsTable.end)\nwhere the table belongs."
            }
        }
    }

    static let consumerTarget = Target(direction: .atLeast, value: 25_000)
    static let rssTarget = Target(direction: .atMost, value: 32)
    static let largeTransactionTarget = Target(direction: .atLeast, value: 0.9)
    static let shardTarget = Target(direction: .atLeast, value: 1.3)
    static let latencyTargets: [Int: Target] = [5_000: Target(direction: .atMost, value: 3), 20_000: Target(direction: .atMost, value: 5)]

    // MARK: rows

    static func rows(_ r: BenchResults) -> [Row] {
        var rows: [Row] = []
        let batched = r.effectsPerSecond.first { $0.key.hasPrefix("batched (default") }?.value
        let others = r.effectsPerSecond.filter { $0.key.hasPrefix("batched (") && !$0.key.hasPrefix("batched (default") }
            .sorted { batchSize($0.key) < batchSize($1.key) }
        let defaultSize = r.effectsPerSecond.keys.first { $0.hasPrefix("batched (default") }.map { "default \(grouped(batchSize($0)))" }
        rows.append(row("consumer, batched (\(defaultSize ?? "the default batch") per transaction), effects/s",
                        batched.map { figure($0) }, batched?.median, consumerTarget))
        for (label, sample) in others {
            rows.append(row("consumer, batched (\(grouped(batchSize(label))) per transaction), effects/s", figure(sample), nil, nil))
        }
        let unbatched = r.effectsPerSecond["unbatched (1 per transaction)"]
        rows.append(row("consumer, unbatched, effects/s", unbatched.map { figure($0) }, nil, nil))

        // A run with --large-rows 0 names no size: the rows say which backlog they were for.
        let largeSize = r.largeRows > 0 ? short(r.largeRows) : "large"
        let rssRuns = [("\(short(r.rows)) drain", "drain \(r.rows) rows, stream"),
                       ("\(largeSize) drain", "drain \(r.largeRows) rows, stream"),
                       ("one \(largeSize)-row transaction", "one \(r.largeRows)-row transaction, stream")]
        let rss = rssRuns.map { (name: $0.0, mib: r.rss[$0.1].map { $0.median / 1_048_576 }) }
        let measuredRSS = rss.compactMap(\.mib)
        rows.append(row("peak RSS, " + rss.map(\.name).joined(separator: " / ") + ", MiB",
                        measuredRSS.isEmpty ? nil : rss.map { $0.mib.map { String(format: "%.1f", $0) } ?? "–" }.joined(separator: " / "),
                        measuredRSS.max(), rssTarget))

        rows.append(drainRow(r))
        let stream = "outbox-relay, stream mode"
        let largeValue = r.drainLargeRatios[stream].map { "\(figure($0, "%.2f")); \(thousands(r.drainLarge[stream]?.median)) rows/s" }
        rows.append(row("drain \(largeSize), stream × pg_recvlogical, per round", largeValue, nil, nil))
        let oneTransaction = "outbox-relay, one \(r.largeRows)-row transaction"
        rows.append(row("one \(largeSize)-row transaction × pg_recvlogical (\(largeSize) backlog), per round",
                        r.drainLargeRatios[oneTransaction].map { figure($0, "%.2f") }, nil, nil))
        let large = r.drainLarge[oneTransaction]?.median, small = r.drainLarge[stream]?.median
        let largeRatio = large.flatMap { large in small.map { large / $0 } }
        rows.append(row("one \(largeSize)-row transaction × \(largeSize) small-transaction drain (medians)",
                        largeRatio.map { String(format: "%.2f", $0) + " (\(thousands(large)) / \(thousands(small)) rows/s)" },
                        largeRatio, largeTransactionTarget))
        rows += latencyRows(r, targets: latencyTargets)


        let shardCounts = r.shardRatios.keys.filter { $0 != "1 shard" }.sorted { batchSize($0) < batchSize($1) }
        if shardCounts.isEmpty {
            rows.append(row("2 shards × 1 shard, same \(short(r.rows)) backlog, per round", nil, nil, shardTarget))
        }
        for label in shardCounts {
            let ratio = r.shardRatios[label]
            rows.append(row("\(label) × 1 shard, same \(short(r.rows)) backlog, per round", ratio.map { figure($0, "%.2f") },
                            ratio?.median, label == "2 shards" ? shardTarget : nil))
        }
        // The same run on other servers (`--also-postgres`): drain and latency beside the first.
        for other in r.otherServers ?? [] {
            let on = "on \(other.serverName): "
            rows.append(prefixed(on, drainRow(other)))
            rows += latencyRows(other, targets: [:]).map { prefixed(on, $0) }
        }
        return rows
    }

    /// The `rows` drain of the stream relay against pg_recvlogical in the same rounds.
    static func drainRow(_ r: BenchResults) -> Row {
        let stream = "outbox-relay, stream mode"
        let value = r.drainRatios[stream].map { "\(figure($0, "%.2f")); \(thousands(r.drain[stream]?.median)) rows/s" }
        return row("drain \(short(r.rows)), stream × pg_recvlogical, per round", value, nil, nil)
    }

    /// commit→ack p99 with the database's share, one row per rate measured.
    static func latencyRows(_ r: BenchResults, targets: [Int: Target]) -> [Row] {
        latencyRates(r).map { rate in
            let label = "outbox-relay, stream @ \(rate)/s"
            let ack = r.latency[label]?.p99, capture = r.captureLatency[label]?.p99
            let value = ack.map { ack in figure(ack, format(ack.median)) + " / " + (capture.map { figure($0, format($0.median)) } ?? "–") }
            return row("commit→ack p99 / of which commit→capture (the database's share) @ \(grouped(rate)) rows/s, ms",
                       value, ack?.median, targets[rate])
        }
    }

    static func prefixed(_ prefix: String, _ row: Row) -> Row {
        var row = row
        row.figure = prefix + row.figure
        return row
    }

    /// The latency rates measured, in order (e.g. 1000, 5000, 20000).
    static func latencyRates(_ r: BenchResults) -> [Int] {
        let prefix = "outbox-relay, stream @ "
        return r.latency.keys.filter { $0.hasPrefix(prefix) && $0.hasSuffix("/s") }
            .compactMap { Int($0.dropFirst(prefix.count).dropLast(2)) }.sorted()
    }

    static func row(_ figure: String, _ value: String?, _ median: Double?, _ target: Target?) -> Row {
        guard let value else { return Row(figure: figure, value: "not measured", target: target?.text ?? "–", met: "–") }
        guard let target, let median else { return Row(figure: figure, value: value, target: "–", met: "–") }
        return Row(figure: figure, value: value, target: target.text, met: target.met(by: median) ? "yes" : "no")
    }

    // MARK: the table

    /// The generated block: the run's description, then the table, between the markers.
    static func markdown(_ r: BenchResults) -> String {
        var out = begin + "\n"
        out += "- Run: \(r.machine.date), \(r.machine.cores) cores, \(String(format: "%.0f", r.machine.memoryGiB)) GiB, Linux \(r.machine.kernel); "
        out += "medians of \(r.runs) runs (min–max).\n"
        if let command = r.command { out += "- Command: `\(command)`.\n" }
        if let note = r.note { out += "- Note: \(note)\n" }
        for server in [r] + (r.otherServers ?? []) where !server.server.isEmpty {
            out += "- \(server.serverName): " + server.server.sorted { $0.key < $1.key }.map { "`\($0.key)=\($0.value)`" }.joined(separator: ", ") + ".\n"
        }
        if !r.kafka.isEmpty {
            out += "- Kafka: " + r.kafka.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ") + ".\n"
        }
        if let model = r.shardModel { out += "- Shard scaling model fitted in this run: \(model)\n" }
        out += "\n| figure | this run | target | met |\n| --- | ---: | ---: | :---: |\n"
        for row in rows(r) { out += "| \(row.figure) | \(row.value) | \(row.target) | \(row.met) |\n" }
        return out + end + "\n"
    }

    /// `document` with the text between the markers (markers included) replaced by `block`.
    static func replacing(in document: String, with block: String, file: String = "the document") throws -> String {
        guard let start = document.range(of: begin.prefix { $0 != "(" }),
              let stop = document.range(of: end, range: start.upperBound..<document.endIndex) else {
            throw RenderError.markersMissing(file)
        }
        let lineStart = document[..<start.lowerBound].lastIndex(of: "\n").map { document.index(after: $0) } ?? document.startIndex
        var after = stop.upperBound
        if after < document.endIndex, document[after] == "\n" { after = document.index(after: after) }
        return String(document[..<lineStart]) + block + String(document[after...])
    }

    /// `--render`: print the block, or replace it in `into`.
    static func render(resultsAt path: String, into: String?) throws {
        let results = try JSONDecoder().decode(BenchResults.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        let block = markdown(results)
        guard let into else {
            print(block, terminator: "")
            return
        }
        let document = try String(contentsOfFile: into, encoding: .utf8)
        try replacing(in: document, with: block, file: into).write(toFile: into, atomically: true, encoding: .utf8)
    }

    // MARK: numbers

    /// The median with the range of the runs, "3.61 (3.01–3.61)"; a figure whose runs did not
    /// differ (or a single run) is its median alone.
    static func figure(_ sample: Sample, _ format: String = "%.0f") -> String {
        sample.min == sample.max ? String(format: format, sample.median) : sample.text(format)
    }

    /// 200000 → "200k", 1000000 → "1M".
    static func short(_ rows: Int) -> String {
        rows >= 1_000_000 && rows % 1_000_000 == 0 ? "\(rows / 1_000_000)M"
            : rows >= 1_000 && rows % 1_000 == 0 ? "\(rows / 1_000)k" : String(rows)
    }

    /// 1000 → "1,000".
    static func grouped(_ value: Int) -> String {
        let digits = String(value)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return out
    }

    /// 199517 → "199.5k".
    static func thousands(_ value: Double?) -> String {
        guard let value else { return "–" }
        return String(format: "%.1fk", value / 1_000)
    }

    /// A latency in ms: two decimals below 10, one below 100, none above.
    static func format(_ milliseconds: Double) -> String {
        milliseconds < 10 ? "%.2f" : milliseconds < 100 ? "%.1f" : "%.0f"
    }

    /// A target's number: 25000, 32, 0.9, 1.3.
    static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%g", value)
    }

    /// The leading number of a label ("batched (default: 256 …" → 256, "2 shards" → 2).
    static func batchSize(_ label: String) -> Int {
        let digits = label.drop { !$0.isNumber }.prefix { $0.isNumber }
        return Int(digits) ?? 0
    }
}
