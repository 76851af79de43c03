public import Logging
import Synchronization

/// What the C callbacks reach through librdkafka's opaque. Retained by the producer or
/// consumer until after `rd_kafka_destroy`, so no callback can outlive it.
class ClientContext: @unchecked Sendable {
    let logger: Logger
    private let firstSecurityFailure = Mutex<KafkaError?>(nil)

    init(logger: Logger) { self.logger = logger }

    /// The first authentication or TLS failure the error callback saw; it stays set.
    var securityFailure: KafkaError? { firstSecurityFailure.withLock { $0 } }
    func recordSecurityFailure(_ error: KafkaError) {
        firstSecurityFailure.withLock { if $0 == nil { $0 = error } }
    }
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
    private let fatalReported = Atomic<Bool>(false)

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

final class ConsumerContext: ClientContext, @unchecked Sendable {
    let onAssign: @Sendable ([TopicPartition]) -> Void
    let onRevoke: @Sendable ([TopicPartition]) -> Void
    init(logger: Logger, onAssign: @escaping @Sendable ([TopicPartition]) -> Void, onRevoke: @escaping @Sendable ([TopicPartition]) -> Void) {
        self.onAssign = onAssign; self.onRevoke = onRevoke
        super.init(logger: logger)
    }
}
