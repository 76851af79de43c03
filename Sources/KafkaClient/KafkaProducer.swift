import Foundation
public import Logging
import Synchronization

/// An idempotent librdkafka producer with one delivery report per message.
///
/// `produce` never blocks: it copies the message into librdkafka's queue, or throws
/// `queueFull`. Delivery reports arrive on a dedicated poller thread through `onDelivery`,
/// from `start()` on: `init` spawns no thread. Callers bound what they keep in flight (the
/// relay's in-flight window).
public final class KafkaProducer: Sendable {
    /// Defaults chosen for the relay; any of them can be overridden through
    /// `KafkaConfiguration.properties`.
    public static let defaultProperties: [String: String] = [
        "enable.idempotence": "true",        // no duplicates or reordering from retries
        "acks": "all",
        "partitioner": "murmur2_random",      // the Java client's key placement
        "linger.ms": "1",                     // measured: 1 ms keeps p99 commit→ack ≤ 5 ms at 5k rows/s (2 ms: ~6 ms, 0 ms: worse under load)
        "batch.num.messages": "10000",
        "queue.buffering.max.messages": "200000",
        "queue.buffering.max.kbytes": "32768", // bounded memory: 32 MiB at most
        "message.timeout.ms": "0",            // never give up on a message: the relay must not drop rows
        "socket.nagle.disable": "true",
        "topic.metadata.refresh.interval.ms": "30000",
    ]

    /// How often a producer with an `onStatistics` handler reports (ms): one Prometheus
    /// scrape interval, so every scrape sees a fresh window. Measured cost (docs/bench-log.md,
    /// "What the statistics cost"): about 1 MiB resident once, no CPU per row to speak of.
    public static let defaultStatisticsInterval = "15000"

    private let client: RDKafkaClient
    private let context: Unmanaged<ProducerContext>
    /// The same context, held strongly: librdkafka's reference ends at `close`, but a
    /// late `send` on a closed producer still registers and resolves its promise here.
    private let tracked: ProducerContext
    private let poller: PollerThread
    private let bootstrapServers: String
    private let sendTokens = Atomic<UInt64>(1)

    /// - Parameters:
    ///   - onDelivery: called on the poller thread with the reports of the messages produced
    ///     with `produce` that one poll served, in the order librdkafka reported them (one
    ///     call per poll instead of one per message keeps the per-message cost down).
    ///   - onError: global errors (all brokers down, authentication); informational, the
    ///     producer keeps retrying.
    ///   - onFatalError: the idempotent producer can no longer guarantee ordering; recreate it.
    ///   - onStatistics: the round trip to each broker, on the poller thread, every
    ///     `statistics.interval.ms` (`defaultStatisticsInterval` unless the configuration
    ///     sets it). Without it librdkafka builds no statistics at all.
    public init(configuration: KafkaConfiguration, logger: Logger,
                onDelivery: @escaping @Sendable ([DeliveryReport]) -> Void,
                onError: @escaping @Sendable (KafkaError) -> Void = { _ in },
                onFatalError: @escaping @Sendable (KafkaError) -> Void = { _ in },
                onStatistics: (@Sendable ([BrokerRoundTrip]) -> Void)? = nil) throws(KafkaError) {
        let context = ProducerContext(logger: logger, onDelivery: onDelivery, onError: onError, onFatalError: onFatalError,
                                      onStatistics: onStatistics)
        var defaults = KafkaProducer.defaultProperties
        if onStatistics != nil { defaults["statistics.interval.ms"] = KafkaProducer.defaultStatisticsInterval }
        let unmanaged = Unmanaged.passRetained(context)
        let client: RDKafkaClient
        do {
            client = try RDKafkaClient.makeProducer(defaults: defaults, configuration: configuration, context: unmanaged,
                                                    statistics: onStatistics != nil)
        } catch {
            unmanaged.release()
            throw error
        }
        self.client = client
        self.context = unmanaged
        self.tracked = context
        self.bootstrapServers = configuration.bootstrapServers
        self.poller = PollerThread(name: "kafka-producer-poll", wake: { client.yield() }) {
            client.poll(timeout: .milliseconds(100))
            context.flushDeliveries()
        }
    }

    /// Starts the poller thread that serves delivery reports (`onDelivery`), errors and
    /// statistics. A caller of `produce` calls it before its first message. The calls that
    /// wait for a report themselves (`send…`, `checkConnectivity`) start it if needed, so
    /// none of them can wait on a report no thread serves; `flush` serves reports on its
    /// own thread. Later calls, and calls after `close`, do nothing.
    public func start() {
        poller.start()
    }

    /// True from `start` (or the first call that starts the poller) until `close`.
    var isPolling: Bool { poller.isRunning }

    deinit {
        close(timeout: .zero)
    }

    /// Queues one message. `key`, `value` and the headers are copied. Throws `queueFull`
    /// (retriable) when librdkafka's queue is at its bound.
    public func produce(topic: String, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                        headers: consuming KafkaHeaders, token: UInt64) throws(KafkaError) {
        precondition(token != 0 && token & ProducerContext.sendTokenBit == 0, "tokens must be in 1..<2^63")
        try enqueue(topic: topic, key: key, value: value, headers: headers.take(), opaque: token)
    }

    public func produce(topic: String, key: [UInt8], value: [UInt8], headers: [(String, [UInt8])], token: UInt64) throws(KafkaError) {
        var failure: KafkaError?
        key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                do throws(KafkaError) { try produce(topic: topic, key: k, value: v, headers: KafkaHeaders(headers), token: token) }
                catch { failure = error }
            }
        }
        if let failure { throw failure }
    }

    /// Produces one message and waits for its delivery report (dead letters, tests).
    public func send(topic: String, key: [UInt8]?, value: [UInt8], headers: [(String, [UInt8])] = []) async throws -> DeliveryReport {
        try await sendInOrder([OutgoingRecord(topic: topic, key: key, value: value, headers: headers)])[0].get()
    }

    /// Produces `records` in the given order (so records with the same key reach their
    /// partition in that order, which the idempotent producer keeps), then waits for all
    /// their delivery reports. Element i of the result is record i's outcome. A producer
    /// closed meanwhile fails the records it had not reported with `closed`.
    public func sendInOrder(_ records: [OutgoingRecord]) async -> [Result<DeliveryReport, KafkaError>] {
        poller.start()  // the reports awaited here come through the poller
        let tokens = records.map { enqueueTracked($0) }
        var results: [Result<DeliveryReport, KafkaError>] = []
        results.reserveCapacity(records.count)
        let context = self.tracked
        for token in tokens {
            switch token {
            case .failure(let error): results.append(.failure(error))
            case .success(let token):
                let report: DeliveryReport = await withCheckedContinuation { continuation in
                    context.awaitReport(token) { continuation.resume(returning: $0) }
                }
                results.append(report.error.map { .failure($0) } ?? .success(report))
            }
        }
        return results
    }

    /// Blocking form of `send`, for dedicated threads (dead letters from a consumer or the
    /// relay's dead-letter worker). Never call it on the cooperative pool.
    public func sendBlocking(topic: String, key: [UInt8]?, value: [UInt8], headers: [(String, [UInt8])] = []) throws -> DeliveryReport {
        try sendInOrderBlocking([OutgoingRecord(topic: topic, key: key, value: value, headers: headers)])[0].get()
    }

    /// Blocking form of `sendInOrder`, for dedicated threads. `giveUp` is asked about every
    /// 100 ms while reports are outstanding; once it says yes, the records not yet reported
    /// fail with `producerClosed` (they may still be delivered: callers treat them as
    /// unsent and may send them again).
    public func sendInOrderBlocking(_ records: [OutgoingRecord], giveUp: () -> Bool = { false }) -> [Result<DeliveryReport, KafkaError>] {
        poller.start()  // the reports awaited here come through the poller
        let tokens = records.map { enqueueTracked($0) }
        let reports = Mutex<[Int: Result<DeliveryReport, KafkaError>]>([:])
        let done = DispatchSemaphore(value: 0)
        var waiting = 0
        for (index, token) in tokens.enumerated() {
            switch token {
            case .failure(let error): reports.withLock { $0[index] = .failure(error) }
            case .success(let token):
                waiting += 1
                tracked.awaitReport(token) { report in
                    reports.withLock { $0[index] = report.error.map { .failure($0) } ?? .success(report) }
                    done.signal()
                }
            }
        }
        while waiting > 0 {
            if done.wait(timeout: .now() + .milliseconds(100)) == .success { waiting -= 1 } else if giveUp() { break }
        }
        return reports.withLock { reports in (0..<records.count).map { reports[$0] ?? .failure(.producerClosed) } }
    }

    /// Enqueues a record whose report goes to `ProducerContext.awaitReport` instead of
    /// `onDelivery`. The promise exists before the record does, so no report is missed.
    private func enqueueTracked(_ record: OutgoingRecord) -> Result<UInt64, KafkaError> {
        let token = sendTokens.add(1, ordering: .relaxed).oldValue | ProducerContext.sendTokenBit
        tracked.expectReport(token)
        var failure: KafkaError?
        (record.key ?? []).withUnsafeBytes { k in
            record.value.withUnsafeBytes { v in
                do throws(KafkaError) {
                    try enqueue(topic: record.topic, key: record.key == nil ? UnsafeRawBufferPointer(start: nil, count: 0) : k,
                                value: v, headers: record.headers.isEmpty ? nil : KafkaHeaders(record.headers).take(), opaque: token)
                } catch { failure = error }
            }
        }
        if let failure {
            tracked.forgetReport(token)
            return .failure(failure)
        }
        return .success(token)
    }

    /// `rdHeaders` belongs to the message once produced, and is freed here otherwise.
    private func enqueue(topic: String, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                         headers rdHeaders: OpaquePointer?, opaque: UInt64) throws(KafkaError) {
        guard gate.enter() else {
            if let rdHeaders { RDKafkaHeaderList.destroy(rdHeaders) }
            throw KafkaError.producerClosed
        }
        defer { gate.leave() }
        try client.produce(topic: topic, key: key, value: value, headers: rdHeaders, opaque: opaque)
    }

    /// Messages queued or in flight in librdkafka.
    public var outstanding: Int {
        guard gate.enter() else { return 0 }
        defer { gate.leave() }
        return client.outstanding
    }

    /// Waits (off the cooperative pool) until every queued message has a delivery report,
    /// or the timeout passes. Returns true when all were reported.
    public func flush(timeout: Duration) async -> Bool {
        let client = self.client
        let context = self.tracked
        let gate = self.gate
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                guard gate.enter() else { return continuation.resume(returning: false) }
                defer { gate.leave() }
                let flushed = client.flush(timeout: timeout)
                context.flushDeliveries()
                continuation.resume(returning: flushed)
            }
        }
    }

    /// Blocking flush for callers on a dedicated thread.
    public func flushBlocking(timeout: Duration) -> Bool {
        guard gate.enter() else { return false }
        defer { gate.leave() }
        return flushUnguarded(timeout: timeout)
    }

    private func flushUnguarded(timeout: Duration) -> Bool {
        let flushed = client.flush(timeout: timeout)
        tracked.flushDeliveries()  // flush served reports on this thread
        return flushed
    }

    /// Drops everything still queued (after a fatal error, before recreating the producer).
    /// Their delivery reports arrive with a purge error.
    public func purge() {
        guard gate.enter() else { return }
        defer { gate.leave() }
        client.purge()
    }

    /// Fetches cluster metadata to prove the brokers are reachable. The error names the
    /// bootstrap servers and the fix; it never contains a credential.
    ///
    /// Fails closed, at once, when a broker refuses the SASL credentials or the TLS
    /// handshake fails (`KafkaSecurityFailure`): librdkafka would keep reconnecting until
    /// `timeout`, and the error would only say that no broker answered.
    public func checkConnectivity(timeout: Duration) async throws {
        poller.start()  // security failures reach `context` through the poller
        let client = self.client, servers = bootstrapServers, gate = self.gate, context = self.tracked
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                guard gate.enter() else { return continuation.resume(throwing: KafkaError.producerClosed) }
                defer { gate.leave() }
                let deadline = ContinuousClock.now + timeout
                var failure: KafkaError?
                repeat {
                    if let security = context.securityFailure { return continuation.resume(throwing: security) }
                    // Short slices, so a security failure reported meanwhile ends the wait.
                    let slice = min(.milliseconds(250), max(.milliseconds(1), deadline - ContinuousClock.now))
                    failure = client.fetchMetadata(timeout: slice)
                } while failure != nil && ContinuousClock.now < deadline
                if let failure {
                    if let security = context.securityFailure { return continuation.resume(throwing: security) }
                    continuation.resume(throwing: KafkaError(
                        code: .unreachable, rawCode: failure.rawCode, name: failure.name,
                        message: "no Kafka broker answered at \(servers) within \(timeout) (\(failure.message)). Is the broker running? Check bootstrap.servers and the security settings.",
                        isRetriable: true))
                } else {
                    continuation.resume()
                }
            }
        }
    }

    /// The first authentication or TLS failure a broker reported since this producer was
    /// created, if any (it stays set: `onError` sees every report as it comes). Such a
    /// failure does not heal by itself; librdkafka keeps reconnecting with its backoff.
    public var securityFailure: KafkaError? { tracked.securityFailure }

    /// Asks for metadata of `topics`, which makes brokers with auto-creation enabled create
    /// them now instead of at the first message (so consumers can join right away).
    public func requestTopicMetadata(_ topics: [String], timeout: Duration = .seconds(5)) async {
        let client = self.client, gate = self.gate
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                guard gate.enter() else { return continuation.resume() }
                defer { gate.leave() }
                for topic in topics { _ = try? client.partitions(of: topic, timeout: timeout) }
                continuation.resume()
            }
        }
    }

    /// Every call that touches the librdkafka handle passes this gate, and `close` shuts
    /// it (waiting for calls already inside) before destroying the handle: a call that
    /// comes late gets `KafkaError.producerClosed`, never a destroyed producer.
    private let gate = UseGate()

    /// `close` for async code: flushing and rd_kafka_destroy block (destroy alone joins
    /// librdkafka's threads), so they run on a thread of their own, not the cooperative pool.
    public func close(timeout: Duration = .seconds(5)) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread { [self] in
                close(timeout: timeout)
                continuation.resume()
            }
        }
    }

    /// Flushes for up to `timeout`, stops the poller and destroys the producer. Blocks.
    public func close(timeout: Duration = .seconds(5)) {
        guard gate.close() else { return }
        _ = flushUnguarded(timeout: timeout)
        poller.stop()
        client.purge()
        client.poll(timeout: .zero)  // deliver purge reports before the context goes away
        tracked.flushDeliveries()
        client.destroy()
        tracked.failPending()
        context.release()
    }
}
