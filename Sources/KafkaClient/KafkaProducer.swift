internal import CRdKafka
import Foundation
public import Logging
import Synchronization

/// An idempotent librdkafka producer with one delivery report per message.
///
/// `produce` never blocks: it copies the message into librdkafka's queue, or throws
/// `queueFull`. Delivery reports arrive on a dedicated poller thread through `onDelivery`.
/// Callers bound what they keep in flight (the relay's in-flight window).
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

    private let handle: RDKafkaHandle
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
        let conf = try makeRDKafkaConf(defaults: defaults, configuration: configuration)
        let unmanaged = Unmanaged.passRetained(context)
        rd_kafka_conf_set_opaque(conf, unmanaged.toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf, producerDeliveryCallback)
        rd_kafka_conf_set_error_cb(conf, producerErrorCallback)
        if onStatistics != nil { rd_kafka_conf_set_stats_cb(conf, producerStatisticsCallback) }
        rd_kafka_conf_set_log_cb(conf, rdkafkaLogCallback)
        var errorBuffer = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errorBuffer, errorBuffer.count) else {
            rd_kafka_conf_destroy(conf)
            unmanaged.release()
            throw KafkaError(code: .configuration, message: "could not create the Kafka producer: \(errorString(errorBuffer))")
        }
        let handle = RDKafkaHandle(rk)
        context.handle = handle
        self.handle = handle
        self.context = unmanaged
        self.tracked = context
        self.bootstrapServers = configuration.bootstrapServers
        self.poller = PollerThread(name: "kafka-producer-poll", wake: { rd_kafka_yield(handle.rk) }) {
            rd_kafka_poll(handle.rk, 100)
            context.flushDeliveries()
        }
    }

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
            if let rdHeaders { rd_kafka_headers_destroy(rdHeaders) }
            throw KafkaError.producerClosed
        }
        defer { gate.leave() }
        // withCString: the implicit String-to-pointer conversion heap-copies a small string
        // (topic names such as BOOK_SAVE) on every call; this copies it to the stack.
        let err = topic.withCString { topicName in
            outbox_rd_kafka_produce(handle.rk, topicName, RD_KAFKA_PARTITION_UA,
                                    key.baseAddress, key.count, value.baseAddress, value.count,
                                    rdHeaders, UnsafeMutableRawPointer(bitPattern: UInt(opaque)))
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if let rdHeaders { rd_kafka_headers_destroy(rdHeaders) }
            throw KafkaError(code: err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? .queueFull : .delivery, err: err,
                             context: "producing to topic \(topic.prefix(100))")
        }
    }

    /// Messages queued or in flight in librdkafka.
    public var outstanding: Int {
        guard gate.enter() else { return 0 }
        defer { gate.leave() }
        return Int(rd_kafka_outq_len(handle.rk))
    }

    /// Waits (off the cooperative pool) until every queued message has a delivery report,
    /// or the timeout passes. Returns true when all were reported.
    public func flush(timeout: Duration) async -> Bool {
        let handle = self.handle
        let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let context = self.context.takeUnretainedValue()
        let gate = self.gate
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                guard gate.enter() else { return continuation.resume(returning: false) }
                defer { gate.leave() }
                let flushed = rd_kafka_flush(handle.rk, ms) == RD_KAFKA_RESP_ERR_NO_ERROR
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
        let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let flushed = rd_kafka_flush(handle.rk, ms) == RD_KAFKA_RESP_ERR_NO_ERROR
        context.takeUnretainedValue().flushDeliveries()  // flush served reports on this thread
        return flushed
    }

    /// Drops everything still queued (after a fatal error, before recreating the producer).
    /// Their delivery reports arrive with a purge error.
    public func purge() {
        guard gate.enter() else { return }
        defer { gate.leave() }
        _ = rd_kafka_purge(handle.rk, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }

    /// Fetches cluster metadata to prove the brokers are reachable. The error names the
    /// bootstrap servers and the fix; it never contains a credential.
    ///
    /// Fails closed, at once, when a broker refuses the SASL credentials or the TLS
    /// handshake fails (`KafkaSecurityFailure`): librdkafka would keep reconnecting until
    /// `timeout`, and the error would only say that no broker answered.
    public func checkConnectivity(timeout: Duration) async throws {
        let handle = self.handle, servers = bootstrapServers, gate = self.gate, context = self.tracked
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                guard gate.enter() else { return continuation.resume(throwing: KafkaError.producerClosed) }
                defer { gate.leave() }
                let deadline = ContinuousClock.now + timeout
                var err = RD_KAFKA_RESP_ERR__TIMED_OUT
                repeat {
                    if let failure = context.securityFailure { return continuation.resume(throwing: failure) }
                    // Short slices, so a security failure reported meanwhile ends the wait.
                    let left = deadline - ContinuousClock.now
                    let ms = max(1, min(250, Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
                    var metadata: UnsafePointer<rd_kafka_metadata>?
                    err = rd_kafka_metadata(handle.rk, 0, nil, &metadata, ms)
                    if let metadata { rd_kafka_metadata_destroy(metadata) }
                } while err != RD_KAFKA_RESP_ERR_NO_ERROR && ContinuousClock.now < deadline
                if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    continuation.resume()
                } else if let failure = context.securityFailure {
                    continuation.resume(throwing: failure)
                } else {
                    continuation.resume(throwing: KafkaError(
                        code: .unreachable, rawCode: err.rawValue, name: String(cString: rd_kafka_err2name(err)),
                        message: "no Kafka broker answered at \(servers) within \(timeout) (\(String(cString: rd_kafka_err2str(err)))). Is the broker running? Check bootstrap.servers and the security settings.",
                        isRetriable: true))
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
        let handle = self.handle, gate = self.gate
        let ms = Int32(clamping: timeout.components.seconds * 1000)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                guard gate.enter() else { return continuation.resume() }
                defer { gate.leave() }
                for topic in topics {
                    let rkt = rd_kafka_topic_new(handle.rk, topic, nil)
                    var metadata: UnsafePointer<rd_kafka_metadata>?
                    _ = rd_kafka_metadata(handle.rk, 0, rkt, &metadata, ms)
                    if let metadata { rd_kafka_metadata_destroy(metadata) }
                    rd_kafka_topic_destroy(rkt)
                }
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
        _ = rd_kafka_purge(handle.rk, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        rd_kafka_poll(handle.rk, 0)  // deliver purge reports before the context goes away
        context.takeUnretainedValue().flushDeliveries()
        rd_kafka_destroy(handle.rk)
        context.takeUnretainedValue().failPending()
        context.release()
    }
}

/// A record for `sendInOrder`: copied into librdkafka when produced.
public struct OutgoingRecord: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [(String, [UInt8])]
    public init(topic: String, key: [UInt8]?, value: [UInt8], headers: [(String, [UInt8])] = []) {
        self.topic = topic; self.key = key; self.value = value; self.headers = headers
    }
}

/// Admits calls while open; `close` shuts it and waits until the calls inside have left.
/// The calls it guards never block (produce, queue length, purge), so the wait is short;
/// flush and metadata calls are bounded by their own timeouts.
final class UseGate: Sendable {
    private let state = Mutex<(closed: Bool, users: Int)>((false, 0))

    func enter() -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.users += 1
            return true
        }
    }

    func leave() { state.withLock { $0.users -= 1 } }

    /// Returns false when it was already closed.
    func close() -> Bool {
        guard state.withLock({ state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }) else { return false }
        while state.withLock({ $0.users }) > 0 { usleep(200) }
        return true
    }
}

/// The `rd_kafka_t*`, shared with callbacks and the poller thread.
final class RDKafkaHandle: @unchecked Sendable {
    let rk: OpaquePointer
    init(_ rk: OpaquePointer) { self.rk = rk }
}

/// What the C callbacks reach through librdkafka's opaque. Retained by the producer
/// until after `rd_kafka_destroy`, so no callback can outlive it.
class ClientContext: @unchecked Sendable {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}

final class ProducerContext: ClientContext, @unchecked Sendable {
    static let sendTokenBit: UInt64 = 1 << 63
    let onDelivery: @Sendable ([DeliveryReport]) -> Void
    /// Reports collected by the C callback during one poll (or flush), handed over together
    /// by `flushDeliveries`. A lock, not thread confinement: flush and close poll too.
    private let collected = Mutex<[DeliveryReport]>([])
    let onError: @Sendable (KafkaError) -> Void
    let onFatalError: @Sendable (KafkaError) -> Void
    /// Reports of tracked sends: registered before the record is enqueued; the report and
    /// the waiter may come in either order.
    private let pending = Mutex<[UInt64: Promise]>([:])
    private enum Promise {
        case waiting((@Sendable (DeliveryReport) -> Void)?)
        case done(DeliveryReport)
    }
    weak var handle: RDKafkaHandle?
    private let fatalReported = Atomic<Bool>(false)
    private let firstSecurityFailure = Mutex<KafkaError?>(nil)
    /// The first authentication or TLS failure the error callback saw.
    var securityFailure: KafkaError? { firstSecurityFailure.withLock { $0 } }
    func recordSecurityFailure(_ error: KafkaError) {
        firstSecurityFailure.withLock { if $0 == nil { $0 = error } }
    }

    let onStatistics: (@Sendable ([BrokerRoundTrip]) -> Void)?

    init(logger: Logger, onDelivery: @escaping @Sendable ([DeliveryReport]) -> Void,
         onError: @escaping @Sendable (KafkaError) -> Void, onFatalError: @escaping @Sendable (KafkaError) -> Void,
         onStatistics: (@Sendable ([BrokerRoundTrip]) -> Void)?) {
        self.onDelivery = onDelivery; self.onError = onError; self.onFatalError = onFatalError
        self.onStatistics = onStatistics
        super.init(logger: logger)
    }

    func expectReport(_ token: UInt64) { pending.withLock { $0[token] = .waiting(nil) } }
    func forgetReport(_ token: UInt64) { _ = pending.withLock { $0.removeValue(forKey: token) } }

    /// Calls `done` with the report of `token` once it is there (at once if it already is).
    func awaitReport(_ token: UInt64, _ done: @escaping @Sendable (DeliveryReport) -> Void) {
        let ready: DeliveryReport? = pending.withLock { pending in
            switch pending[token] {
            case .done(let report)?:
                pending[token] = nil
                return report
            case .waiting?:
                pending[token] = .waiting(done)
                return nil
            case nil:
                return DeliveryReport(token: token, partition: -1, offset: -1, size: 0, error: .producerClosed, failed: nil)
            }
        }
        if let ready { done(ready) }
    }

    func deliver(_ report: DeliveryReport) {
        if report.token & ProducerContext.sendTokenBit != 0 {
            let waiter: (@Sendable (DeliveryReport) -> Void)? = pending.withLock { pending in
                guard case .waiting(let waiter)? = pending[report.token] else { return nil }
                if waiter == nil { pending[report.token] = .done(report) } else { pending[report.token] = nil }
                return waiter
            }
            waiter?(report)
        } else {
            collected.withLock { $0.append(report) }
        }
    }

    /// Hands the reports collected so far to `onDelivery`, on the calling thread.
    func flushDeliveries() {
        let reports = collected.withLock { collected -> [DeliveryReport] in
            guard !collected.isEmpty else { return [] }
            defer { collected.removeAll(keepingCapacity: true) }
            return collected
        }
        if !reports.isEmpty { onDelivery(reports) }
    }

    func fatal(_ error: KafkaError) {
        if !fatalReported.exchange(true, ordering: .acquiringAndReleasing) { onFatalError(error) }
    }

    func failPending() {
        let all = pending.withLock { p in defer { p.removeAll() }; return p }
        for (token, promise) in all {
            if case .waiting(let waiter?) = promise {
                waiter(DeliveryReport(token: token, partition: -1, offset: -1, size: 0, error: .producerClosed, failed: nil))
            }
        }
    }
}

private func producerDeliveryCallback(_ rk: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque, let message else { return }
    let context = Unmanaged<ProducerContext>.fromOpaque(opaque).takeUnretainedValue()
    let m = message.pointee
    let token = UInt64(UInt(bitPattern: m._private))
    var error: KafkaError?
    var failed: FailedMessage?
    if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
        var e = KafkaError(code: .delivery, err: m.err)
        if m.err == RD_KAFKA_RESP_ERR__FATAL { e.isFatal = true }
        error = e
        failed = copyFailedMessage(message)
    }
    context.deliver(DeliveryReport(token: token, partition: m.partition, offset: m.offset,
                                   size: m.len + m.key_len, error: error, failed: failed))
}

private func copyFailedMessage(_ message: UnsafePointer<rd_kafka_message_t>) -> FailedMessage {
    let m = message.pointee
    let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
    let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) } ?? []
    let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
    var headers: [(String, [UInt8])] = []
    var rdHeaders: OpaquePointer?
    if rd_kafka_message_headers(message, &rdHeaders) == RD_KAFKA_RESP_ERR_NO_ERROR, let rdHeaders {
        var index = 0
        var name: UnsafePointer<CChar>?
        var bytes: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(rdHeaders, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            headers.append((name.map { String(cString: $0) } ?? "", bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
            index += 1
        }
    }
    return FailedMessage(topic: topic, key: key, value: value, headers: headers)
}

/// librdkafka's statistics document, every `statistics.interval.ms`, on the poller thread.
/// Returning 0 leaves the document to librdkafka to free.
private func producerStatisticsCallback(_ rk: OpaquePointer?, _ json: UnsafeMutablePointer<CChar>?, _ length: Int,
                                        _ opaque: UnsafeMutableRawPointer?) -> Int32 {
    guard let opaque, let json else { return 0 }
    let context = Unmanaged<ProducerContext>.fromOpaque(opaque).takeUnretainedValue()
    context.onStatistics?(BrokerRoundTrips.parse(UnsafeRawBufferPointer(start: json, count: length)))
    return 0
}

private func producerErrorCallback(_ rk: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque, let rk else { return }
    let context = Unmanaged<ProducerContext>.fromOpaque(opaque).takeUnretainedValue()
    let code = rd_kafka_resp_err_t(rawValue: err)
    let text = reason.map { String(cString: $0) } ?? ""
    if code == RD_KAFKA_RESP_ERR__FATAL {
        var buffer = [CChar](repeating: 0, count: 512)
        let underlying = rd_kafka_fatal_error(rk, &buffer, buffer.count)
        var error = KafkaError(code: .fatal, err: underlying, context: errorString(buffer))
        error.isFatal = true
        context.logger.error("kafka producer fatal error", metadata: ["error": "\(error)"])
        context.fatal(error)
    } else if let failure = KafkaSecurityFailure.classify(name: String(cString: rd_kafka_err2name(code)), reason: text) {
        context.logger.error("kafka broker refused this client", metadata: ["error": "\(failure)"])
        context.recordSecurityFailure(failure)
        context.onError(failure)
    } else {
        let error = KafkaError(code: .delivery, err: code, context: text)
        context.logger.warning("kafka client error", metadata: ["error": "\(error)"])
        context.onError(error)
    }
}

func rdkafkaLogCallback(_ rk: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ message: UnsafePointer<CChar>?) {
    // librdkafka logs from its own threads; swift-log is thread-safe. Map syslog levels.
    guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
    let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    let text = message.map { String(cString: $0) } ?? ""
    let swiftLevel: Logger.Level = level <= 3 ? .error : level == 4 ? .warning : level <= 6 ? .info : .debug
    context.logger.log(level: swiftLevel, "\(text)", metadata: ["facility": "\(facility.map { String(cString: $0) } ?? "")"])
}
