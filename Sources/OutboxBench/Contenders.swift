import EphemeralServers
import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import Relay
import Synchronization
import Schema

/// The things being compared. Every contender drains a backlog built once per round for all
/// of them (`BenchEnvironment.backlog(slots:)`): each has its own slot, created before the
/// backlog, so all decode the same WAL from the same page cache. Each is timed over its
/// steady drain: from its first output to its last row, so process start-up, connecting
/// and the first metadata round trips (which differ per contender, and were ~5% of a 200k
/// drain) stay out of the ratio.
enum Contenders {
    /// `pg_recvlogical` with pgoutput into a file: decoding and the walsender protocol alone,
    /// the ceiling. Timed from the first bytes in the file to its exit at `end`.
    static func decodeLimit(_ env: BenchEnvironment, slot: String, rows: Int, end: LSN) async throws -> Double {
        let output = tempPath("recvlogical.out")
        try? FileManager.default.removeItem(atPath: output)
        let process = try ChildProcess([env.cluster.binary("pg_recvlogical"), "-d", env.keyValueDSN, "--slot", slot, "--start",
                                        "--endpos", end.description, "-o", "proto_version=1", "-o", "publication_names=outbox_pub",
                                        "--no-loop", "-F", "0", "-f", output], outputPath: tempPath("recvlogical.log"))
        var firstOutput: ContinuousClock.Instant?
        var exited: Int32?
        while exited == nil {
            if firstOutput == nil, fileSize(output) > 0 { firstOutput = .now }
            try await Task.sleep(for: .milliseconds(2))
            exited = process.exitStatusIfExited()
        }
        let finished = ContinuousClock.now
        let status = exited ?? -1
        try? FileManager.default.removeItem(atPath: output)
        try await env.dropSlot(slot)
        guard status == 0, let firstOutput else { throw BenchError("pg_recvlogical failed (\(status)): \(process.output.suffix(500))") }
        return Double(rows) / seconds(finished - firstOutput)
    }

    /// Decoding with no client at all: the backend decodes the slot (pgoutput, binary) and
    /// only counts the changes. A reference for how much of the budget the walsender
    /// protocol itself takes; not the denominator (the issue defines that as pg_recvlogical).
    static func serverSideDecode(_ env: BenchEnvironment, slot: String, rows: Int) async throws -> Double {
        let started = ContinuousClock.now
        _ = try await env.db.query("""
            SELECT count(*) AS n FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'outbox_pub')
            """, [.text(slot)])
        let elapsed = ContinuousClock.now - started
        try await env.dropSlot(slot)
        return Double(rows) / seconds(elapsed)
    }

    struct RelayRun { var rowsPerSecond: Double; var peakRSS: Int }

    /// Our relay as a real process (release build), timed from its first acknowledged row
    /// (or, with `clockFromStreaming`, from the moment it reads the slot) to its last, read
    /// from its own /metrics endpoint (every 5 ms).
    static func relay(_ env: BenchEnvironment, binary: String, capture: CaptureMode, slot: String, rows: Int,
                      clockFromStreaming: Bool = false) async throws -> RelayRun {
        evictFromPageCache(binary)
        let port = freeLoopbackPort()
        let process = try ChildProcess([binary, "run", "--database-url", env.databaseURL, "--kafka-bootstrap-servers", env.broker.bootstrapServers,
                                        "--slot", slot, "--capture", capture.rawValue, "--http-port", String(port), "--log-level", "error",
                                        "--set", "sweeper=false", "--set", "spill-dir=\(NSTemporaryDirectory())"]
                                       + (env.relayKafkaProperties.isEmpty ? [] : ["--kafka-properties",
                                          env.relayKafkaProperties.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ",")]),
                                       outputPath: tempPath("relay-\(capture.rawValue).log"))
        var published = 0
        var first: (at: ContinuousClock.Instant, count: Int)?
        var firstAcknowledged: ContinuousClock.Instant?
        let deadline = ContinuousClock.now + .seconds(600)
        while published < rows {
            guard ContinuousClock.now < deadline else { process.signal(SIGKILL); throw BenchError("relay did not drain within 600 s (\(published) of \(rows))") }
            if let status = process.exitStatusIfExited() { throw BenchError("the relay exited (\(status)) while draining: \(process.output.suffix(800))") }
            try await Task.sleep(for: .milliseconds(5))
            published = await scrapeCounter(port: port, name: "outbox_relay_events_published_total") ?? published
            if firstAcknowledged == nil, published > 0 { firstAcknowledged = .now }
            if first == nil, published > 0 { first = (.now, published) }
            // One transaction is published only at its commit, after all of it was received
            // (and spilled): timing from the first acknowledged row would leave that half of
            // the work out, so its clock starts when the relay starts reading the slot.
            if first == nil, clockFromStreaming, await scrapeCounter(port: port, name: "outbox_relay_streaming") == 1 {
                first = (.now, 0)
            }
        }
        let finished = ContinuousClock.now
        if clockFromStreaming, let started = first?.at, let acknowledged = firstAcknowledged {
            // Where the time of one transaction goes: receiving it (and spilling) until its
            // commit, then publishing it.
            log(String(format: "    receive phase %.2f s (streaming to the first acknowledged row), publish phase %.2f s",
                       seconds(acknowledged - started), seconds(finished - acknowledged)))
        }
        let rss = peakRSS(pid: process.pid) ?? 0
        if let cpu = cpuSeconds(pid: process.pid) {
            log(String(format: "    relay CPU %.2f s for %d rows: %.1f µs/row", cpu, rows, cpu / Double(rows) * 1e6))
        }
        let breakdown = residentByMapping(pid: process.pid).prefix(8)
        log("    resident now, by mapping: " + breakdown.map { "\($0.mapping) \(String(format: "%.1f", Double($0.bytes) / 1_048_576))" }.joined(separator: ", ") + " MiB")
        process.signal(SIGTERM)
        guard let status = await process.waitForExit(timeout: .seconds(60)) else {
            process.signal(SIGKILL)
            _ = await process.waitForExit()
            throw BenchError("the relay did not exit within 60 s of SIGTERM: \(process.output.suffix(800))")
        }
        if status != 0 { throw BenchError("the relay exited with \(status) after SIGTERM: \(process.output.suffix(800))") }
        try await env.dropSlot(slot)
        // Rows counted at the first scrape were acknowledged before the clock started.
        let timed = rows - (first?.count ?? 0)
        return RelayRun(rowsPerSecond: Double(timed) / seconds(finished - (first?.at ?? finished)), peakRSS: rss)
    }

    /// `pg_recvlogical` (test_decoding text, one line per change) piped into `kcat -P`:
    /// what a user would script without a relay. No per-row keys or headers, BEGIN/COMMIT
    /// lines included, no acknowledgement tracking: it is only a throughput reference
    /// (timed end to end: a pipe shows no first output to start the clock at).
    static func shellPipeline(_ env: BenchEnvironment, slot: String, rows: Int, end: LSN) async throws -> Double {
        let script = "\(env.cluster.binary("pg_recvlogical")) -d '\(env.keyValueDSN)' --slot \(slot) --start --endpos \(end) --no-loop -f - "
            + "| kcat -P -b \(env.broker.bootstrapServers) -t bench.shell -X queue.buffering.max.messages=1000000"
        let started = ContinuousClock.now
        let process = try ChildProcess(["/bin/bash", "-o", "pipefail", "-c", script], outputPath: tempPath("shell.log"))
        let status = await process.waitForExit()
        let elapsed = ContinuousClock.now - started
        try await env.dropSlot(slot)
        guard status == 0 else { throw BenchError("shell pipeline failed (\(status)): \(process.output.suffix(500))") }
        return Double(rows) / seconds(elapsed)
    }
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
}

/// The original service's relay: a scheduler that selects INIT rows and publishes them,
/// marking each batch once its deliveries are acknowledged. Re-implemented faithfully so
/// it runs on the same servers.
final class PollingRelay: @unchecked Sendable {
    let period: Duration
    let batch = 1_000
    private let producer: KafkaProducer
    private let running = Atomic<Bool>(true)
    private let published = Atomic<Int>(0)
    private var task: Task<Void, any Error>?
    /// (outbox id, ack time in unix ns) for latency measurement.
    let acks = Locked<[(Int64, Int64)]>([])

    init(env: BenchEnvironment, period: Duration) throws {
        self.period = period
        producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: env.broker.bootstrapServers, clientID: "polling-relay"),
                                     logger: Logger(label: "polling-relay"), onDelivery: { _ in })
        let url = env.databaseURL
        task = Task { [self] in try await loop(url: url) }
    }

    var publishedCount: Int { published.load(ordering: .relaxed) }

    private func loop(url: String) async throws {
        let conn = try await PGConnection.connect(url, applicationName: "polling-relay")
        while running.load(ordering: .relaxed) {
            let sent = try await conn.transaction { tx in
                let rows = try await tx.query("""
                    SELECT outbox_id, topic, mq_key, payload::text AS payload FROM outbox
                    WHERE status = 'INIT' ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED
                    """, [.int(batch)]).rows
                if rows.isEmpty { return 0 }
                let messages = try rows.map { (try $0.int64("outbox_id"), try $0.string("topic"), try $0.string("mq_key"), try $0.string("payload")) }
                try await withThrowingTaskGroup(of: (Int64, Int64).self) { group in
                    for (id, topic, key, payload) in messages {
                        group.addTask { [producer] in
                            _ = try await producer.send(topic: topic, key: Array(key.utf8), value: Array(payload.utf8),
                                                        headers: [(RecordContract.Header.outboxID, Array(String(id).utf8))])
                            return (id, Int64(Date().timeIntervalSince1970 * 1e9))
                        }
                    }
                    for try await ack in group { acks.withLock { $0.append(ack) } }
                }
                try await tx.query("UPDATE outbox SET status = 'PUBLISHED' WHERE outbox_id = ANY($1::bigint[])",
                                   [.text("{" + messages.map { String($0.0) }.joined(separator: ",") + "}")])
                return messages.count
            }
            published.add(sent, ordering: .relaxed)
            if sent < batch { try await Task.sleep(for: period) }
        }
    }

    func stop() async {
        running.store(false, ordering: .relaxed)
        task?.cancel()
        _ = try? await task?.value
        await producer.close()
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func tempPath(_ name: String) -> String { NSTemporaryDirectory() + "outbox-bench-" + name }

/// Reads one counter from the relay's Prometheus endpoint.
func scrapeCounter(port: Int, name: String) async -> Int? {
    await LoopbackHTTP.get(port: port, path: "/metrics").flatMap { LoopbackHTTP.sample(name, in: $0.body) }.map { Int($0) }
}

/// Drops `path`'s pages from the page cache before a relay run, so its peak RSS does not
/// depend on how recently the binary was written. A page fault maps the neighbouring pages
/// that are already cached too (fault-around, 64 KiB), and a freshly built or copied binary
/// is cached whole: the same binary then showed 18.2 MiB resident instead of 16.3, which
/// once passed for a 2 MiB regression between two builds. Best effort: a failure only
/// leaves the cache as it was.
func evictFromPageCache(_ path: String) {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return }
    defer { close(fd) }
    _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
}
