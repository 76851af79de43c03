import Foundation
import KafkaClient
import Logging
import Metrics
import PGOutput
import PostgresClient
import Relay
import Synchronization

/// Captures every commit→ack sample the in-process relay records (the Timer
/// `outbox_relay_commit_to_ack_seconds`, computed from PostgreSQL's commit timestamp), and
/// every commit→capture sample (`outbox_relay_commit_to_capture_seconds`, one per transaction).
final class CapturingMetrics: MetricsFactory, @unchecked Sendable {
    static let shared = CapturingMetrics()
    let samples = Locked<[Int64]>([])
    let captureSamples = Locked<[Int64]>([])
    /// The broker round trips the relay's statistics reported (`outbox_relay_kafka_broker_rtt_seconds`),
    /// seconds by quantile label, one value per statistics window.
    let brokerRoundTrips = Locked<[String: [Double]]>([:])

    final class RoundTripCapture: RecorderHandler, @unchecked Sendable {
        let sink: Locked<[String: [Double]]>
        let quantile: String
        init(_ sink: Locked<[String: [Double]]>, quantile: String) { self.sink = sink; self.quantile = quantile }
        func record(_ value: Int64) { record(Double(value)) }
        func record(_ value: Double) { sink.withLock { $0[quantile, default: []].append(value) } }
    }

    final class Capture: TimerHandler, @unchecked Sendable {
        let sink: Locked<[Int64]>?
        init(_ sink: Locked<[Int64]>?) { self.sink = sink }
        func recordNanoseconds(_ duration: Int64) { sink?.withLock { $0.append(duration) } }
    }
    final class Nothing: CounterHandler, FloatingPointCounterHandler, RecorderHandler, MeterHandler, @unchecked Sendable {
        func increment(by: Int64) {}
        func increment(by: Double) {}
        func reset() {}
        func record(_ value: Int64) {}
        func record(_ value: Double) {}
        func set(_ value: Int64) {}
        func set(_ value: Double) {}
        func increment(by: Double, _ : Void = ()) {}
        func decrement(by: Double) {}
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { Nothing() }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler { Nothing() }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard label == "outbox_relay_kafka_broker_rtt_seconds", let quantile = dimensions.first(where: { $0.0 == "quantile" })?.1 else { return Nothing() }
        return RoundTripCapture(brokerRoundTrips, quantile: quantile)
    }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { Nothing() }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Capture(label == "outbox_relay_commit_to_ack_seconds" ? samples : label == "outbox_relay_commit_to_capture_seconds" ? captureSamples : nil)
    }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

/// Writes `rate` rows/s for `duration` in small transactions from several connections, and
/// records each row's commit time (taken when COMMIT returns) by outbox id.
struct RateLoad {
    var rowsPerTransaction = 5
    var writers = 4
    /// Exponential gaps between a writer's transactions (a Poisson arrival process) instead
    /// of a fixed period: at a trickle, rows then land at every phase of the relay's cycle.
    var randomGaps = false
    let commits = Locked<[Int64: Int64]>([:])

    /// Enough writers for `rate`: each keeps at most ~250 transactions/s, well inside one
    /// connection's round trips on this machine, so the writers never fall behind.
    init(rate: Int) {
        self.init(rowsPerTransaction: 5, writers: min(16, max(4, rate / 5 / 250)))
    }

    init(rowsPerTransaction: Int = 5, writers: Int = 4, randomGaps: Bool = false) {
        self.rowsPerTransaction = rowsPerTransaction
        self.writers = writers
        self.randomGaps = randomGaps
    }

    /// The trickle: one row per transaction, one writer, random gaps.
    static let trickle = RateLoad(rowsPerTransaction: 1, writers: 1, randomGaps: true)

    func run(_ env: BenchEnvironment, rate: Int, duration: Duration) async throws {
        let transactionsPerSecond = Double(rate) / Double(rowsPerTransaction)
        let meanGap = Double(writers) / transactionsPerSecond
        let end = ContinuousClock.now + duration
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<writers {
                group.addTask {
                    let conn = try await PGConnection.connect(env.databaseURL)
                    // Prepared once per connection, as an application's driver does (JDBC
                    // prepares the statements it runs repeatedly), with no parameters, so
                    // PostgreSQL plans it once; and `text || text`, because `text || int` is a
                    // SQL function the planner parses again to inline it. Planning the INSERT
                    // for every transaction cost the writers' backends most of a core at 20,000
                    // rows/s, CPU the walsender and the relay then waited for.
                    try await conn.query("""
                        PREPARE bench_write AS
                        INSERT INTO outbox (topic, mq_key, type, payload)
                        SELECT 'BENCH', 'BOOK:' || (random() * 1000)::int::text, 'BOOK_SAVE',
                               jsonb_build_object('book', jsonb_build_object('bookingId', g, 'seatId', g, 'userId', 7, 'price', 50000, 'status', 'RESERVED'),
                                                  'waitToken', jsonb_build_object('tokenId', 7, 'userId', 7, 'token', 'b1946ac9', 'status', 'ACTIVE'))
                        FROM generate_series(1, \(rowsPerTransaction)) g RETURNING outbox_id
                        """)
                    var next = ContinuousClock.now
                    while ContinuousClock.now < end {
                        let ids = try await conn.query("EXECUTE bench_write").rows.map { try $0.int64("outbox_id") }
                        let now = Int64(Date().timeIntervalSince1970 * 1e9)
                        commits.withLock { for id in ids { $0[id] = now } }
                        next += .seconds(randomGaps ? -meanGap * log(Double.random(in: Double.ulpOfOne..<1)) : meanGap)
                        // Keep the schedule: a writer held up (by the server, or by the
                        // machine) catches up instead of skipping the transactions it
                        // missed, which would omit exactly the load a stall should queue.
                        let wait = next - ContinuousClock.now
                        if wait > .zero { try await Task.sleep(for: wait) }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

/// Starts our relay in this process on `slot` and returns once it streams and has had half a
/// second to warm up (producer connected, metadata cached; a notify-mode relay has rung in).
/// A relay that halts (bad slot, configuration) never streams: that is an error naming why.
func startStreaming(_ env: BenchEnvironment, slot: String, capture: CaptureMode, label: String) async throws -> (RelayService, Task<Void, any Error>) {
    var configuration = RelayConfiguration(databaseURL: env.databaseURL, kafka: env.relayKafka)
    // The broker's round trip per second (librdkafka's statistics), unless --kafka-property sets it.
    if configuration.kafka.properties["statistics.interval.ms"] == nil { configuration.kafka.properties["statistics.interval.ms"] = "1000" }
    configuration.slotName = slot
    configuration.capture = capture
    configuration.spillDirectory = NSTemporaryDirectory()
    let relay = try RelayService(configuration: configuration, sweeper: nil, logger: Logger(label: label))
    let task = Task { try await relay.run() }
    while relay.health.current.state != .streaming {
        if relay.health.current.state == .halted {
            _ = try? await task.value
            throw BenchError("the relay under test halted: \(relay.health.current.detail)")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    try await Task.sleep(for: .milliseconds(500))
    return (relay, task)
}

enum LatencyBench {
    /// Our relay (in-process, stream mode): commit→ack from PostgreSQL's commit timestamp
    /// to the delivery report, for every row written at `rate` rows/s; and commit→capture
    /// (to the relay reading the transaction's Commit), the database's share of it.
    static func relay(_ env: BenchEnvironment, capture: CaptureMode = .stream, load: RateLoad = RateLoad(),
                      rate: Int, duration: Duration) async throws -> (ack: Percentiles, capture: Percentiles) {
        let slot = "bench_latency"
        try await env.db.query("TRUNCATE outbox")
        try await env.dropSlot(slot)
        if capture == .notify { try await NotifyTrigger.install(on: env.db) }
        let (relay, task) = try await startStreaming(env, slot: slot, capture: capture, label: "bench-relay")
        CapturingMetrics.shared.samples.withLock { $0.removeAll() }
        CapturingMetrics.shared.captureSamples.withLock { $0.removeAll() }
        CapturingMetrics.shared.brokerRoundTrips.withLock { $0.removeAll() }
        try await load.run(env, rate: rate, duration: duration)
        try await Task.sleep(for: .milliseconds(500))
        let trips = CapturingMetrics.shared.brokerRoundTrips.withLock { $0 }
        if let p50 = trips["0.5"], let p99 = trips["0.99"] {
            // The broker's share of the tail: its produce round trip, per statistics window.
            log(String(format: "    broker round trip (librdkafka, %d windows): p50 %.2f ms, p99 median %.2f ms, p99 max %.2f ms",
                       p99.count, Sample(p50).median * 1e3, Sample(p99).median * 1e3, Sample(p99).max * 1e3))
        }
        let samples = CapturingMetrics.shared.samples.withLock { $0 }
        let captured = Percentiles(CapturingMetrics.shared.captureSamples.withLock { $0 })
        relay.stop()
        try await task.value
        try await env.dropSlot(slot)
        if capture == .notify { try await NotifyTrigger.remove(on: env.db) }
        return (Percentiles(samples), captured)
    }

    /// The polling relay at `period`: commit (client side, when COMMIT returned) to ack.
    static func polling(_ env: BenchEnvironment, period: Duration, rate: Int, duration: Duration) async throws -> Percentiles {
        try await env.db.query("TRUNCATE outbox")
        let poller = try PollingRelay(env: env, period: period)
        let load = RateLoad()
        try await load.run(env, rate: rate, duration: duration)
        let written = load.commits.withLock { $0.count }
        let deadline = ContinuousClock.now + period + .seconds(30)
        while poller.publishedCount < written, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        await poller.stop()
        let commits = load.commits.withLock { $0 }
        let latencies = poller.acks.withLock { acks in acks.compactMap { id, ack in commits[id].map { ack - $0 } } }
        return Percentiles(latencies)
    }
}
