import Foundation
import KafkaClient
import Logging
import Synchronization

/// Owns the relay's one Kafka producer and replaces it when a session restarts. The
/// capture, the dead-letter worker and the sweeper all ask it for the producer per call;
/// a call that races a replacement meets a closed producer and gets
/// `KafkaError.producerClosed` (retriable: nothing was sent), never a destroyed one.
final class ProducerHolder: Sendable {
    private let current: Mutex<KafkaProducer?>
    private let make: @Sendable () throws -> KafkaProducer

    init(configuration: KafkaConfiguration, logger: Logger,
         onDelivery: @escaping @Sendable ([DeliveryReport]) -> Void,
         onError: @escaping @Sendable (KafkaError) -> Void = { _ in },
         onFatalError: @escaping @Sendable (KafkaError) -> Void,
         onStatistics: (@Sendable ([BrokerRoundTrip]) -> Void)? = nil) throws {
        make = {
            try KafkaProducer(configuration: configuration, logger: logger, onDelivery: onDelivery, onError: onError,
                              onFatalError: onFatalError, onStatistics: onStatistics)
        }
        current = Mutex(try make())
    }

    /// Starts the current producer's delivery-report poller (the relay's `run`, not `init`).
    func start() {
        current.withLock { $0 }?.start()
    }

    /// The producer to use now.
    func producer() throws(KafkaError) -> KafkaProducer {
        guard let producer = current.withLock({ $0 }) else { throw KafkaError.producerClosed }
        return producer
    }

    /// Replaces the producer, purging what the old one still held (those rows are read
    /// again from the slot, so nothing is lost). Blocks: call it from a dedicated thread.
    func recreate() throws {
        current.withLock { $0 }?.close(timeout: .zero)
        let fresh = try make()
        fresh.start()
        current.withLock { $0 = fresh }
    }

    /// Flushes for up to `timeout` and destroys the producer. Blocks.
    func close(timeout: Duration) {
        let old = current.withLock { current in
            defer { current = nil }
            return current
        }
        old?.close(timeout: timeout)
    }

    /// Produces `records` in order and waits for their reports (sweeper, dead letters).
    func sendInOrder(_ records: [OutgoingRecord]) async -> [Result<DeliveryReport, KafkaError>] {
        do {
            return await try producer().sendInOrder(records)
        } catch {
            return records.map { _ in .failure(error) }
        }
    }

    /// Sends one record and waits for its report. Blocks: dedicated threads only.
    func sendBlocking(_ record: OutgoingRecord) throws {
        _ = try producer().sendBlocking(topic: record.topic, key: record.key, value: record.value, headers: record.headers)
    }
}
