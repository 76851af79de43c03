internal import CRdKafka
import Foundation

/// One librdkafka client (`rd_kafka_t*`) and the calls the producer and the consumer make
/// on it. Its context is librdkafka's opaque: the owner keeps the context retained until
/// after `destroy`, so no callback can outlive it.
final class RDKafkaClient: @unchecked Sendable {
    /// Internal for the extensions in this folder; nothing outside `RDKafka/` sees it.
    let rk: OpaquePointer

    private init(_ rk: OpaquePointer) { self.rk = rk }

    /// A producer: `defaults` plus the configuration (which wins), the producer callbacks
    /// (statistics only when asked: without the callback librdkafka builds none).
    static func makeProducer(defaults: [String: String], configuration: KafkaConfiguration,
                             context: Unmanaged<ProducerContext>, statistics: Bool) throws(KafkaError) -> RDKafkaClient {
        let conf = try makeRDKafkaConf(defaults: defaults, configuration: configuration)
        rd_kafka_conf_set_opaque(conf, context.toOpaque())
        RDKafkaCallbacks.installProducer(on: conf, statistics: statistics)
        return try make(RD_KAFKA_PRODUCER, conf: conf, role: "producer")
    }

    /// A group consumer whose events (rebalances, errors) are served by `consumerPoll`.
    static func makeConsumer(defaults: [String: String], configuration: KafkaConfiguration,
                             context: Unmanaged<ConsumerContext>) throws(KafkaError) -> RDKafkaClient {
        let conf = try makeRDKafkaConf(defaults: defaults, configuration: configuration)
        rd_kafka_conf_set_opaque(conf, context.toOpaque())
        RDKafkaCallbacks.installConsumer(on: conf)
        let client = try make(RD_KAFKA_CONSUMER, conf: conf, role: "consumer")
        rd_kafka_poll_set_consumer(client.rk)
        return client
    }

    /// `rd_kafka_new` takes `conf` on success; on failure it is freed here.
    private static func make(_ type: rd_kafka_type_t, conf: OpaquePointer, role: String) throws(KafkaError) -> RDKafkaClient {
        var errorBuffer = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(type, conf, &errorBuffer, errorBuffer.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .configuration, message: "could not create the Kafka \(role): \(errorString(errorBuffer))")
        }
        return RDKafkaClient(rk)
    }

    /// Serves queued events (delivery reports, errors, statistics), waiting up to `timeout`
    /// for the first.
    func poll(timeout: Duration) { rd_kafka_poll(rk, timeout.rdKafkaMilliseconds) }

    /// Makes a blocked `poll` return now.
    func yield() { rd_kafka_yield(rk) }

    /// Fetches the cluster's metadata (all topics: none are created by it). nil when a
    /// broker answered; otherwise why not, as an `unreachable` error.
    func fetchMetadata(timeout: Duration) -> KafkaError? {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(rk, 0, nil, &metadata, timeout.rdKafkaMilliseconds)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(code: .unreachable, err: err)
    }

    /// The partitions of `topic` from the cluster's metadata. Asking names the topic, which
    /// makes brokers with auto-creation enabled create it.
    func partitions(of topic: String, timeout: Duration) throws(KafkaError) -> [TopicPartition] {
        let rkt = rd_kafka_topic_new(rk, topic, nil)
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(rk, 0, rkt, &metadata, timeout.rdKafkaMilliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(code: .unreachable, err: err, context: "reading metadata for \(topic)")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var partitions: [TopicPartition] = []
        for t in 0..<Int(metadata.pointee.topic_cnt) {
            let md = metadata.pointee.topics[t]
            for p in 0..<Int(md.partition_cnt) {
                partitions.append(TopicPartition(topic: String(cString: md.topic), partition: md.partitions[p].id))
            }
        }
        return partitions
    }

    /// Low and high watermarks of one partition, from its leader.
    func watermarks(_ tp: TopicPartition, timeout: Duration) throws(KafkaError) -> (low: Int64, high: Int64) {
        var low: Int64 = 0, high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(rk, tp.topic, tp.partition, &low, &high, timeout.rdKafkaMilliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .unreachable, err: err, context: "reading watermarks") }
        return (low, high)
    }

    /// Destroys the handle; joins librdkafka's threads, so it blocks.
    func destroy() { rd_kafka_destroy(rk) }

    // MARK: producing

    /// Queues one message, copying key and value. `headers` belongs to the message once
    /// produced, and is freed here otherwise. Throws `queueFull` at librdkafka's bound.
    func produce(topic: String, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                 headers: OpaquePointer?, opaque: UInt64) throws(KafkaError) {
        // withCString: the implicit String-to-pointer conversion heap-copies a small string
        // (topic names such as BOOK_SAVE) on every call; this copies it to the stack.
        let err = topic.withCString { topicName in
            outbox_rd_kafka_produce(rk, topicName, RD_KAFKA_PARTITION_UA,
                                    key.baseAddress, key.count, value.baseAddress, value.count,
                                    headers, UnsafeMutableRawPointer(bitPattern: UInt(opaque)))
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if let headers { RDKafkaHeaderList.destroy(headers) }
            throw KafkaError(code: err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? .queueFull : .delivery, err: err,
                             context: "producing to topic \(topic.prefix(100))")
        }
    }

    /// Messages queued or in flight.
    var outstanding: Int { Int(rd_kafka_outq_len(rk)) }

    /// Waits until every queued message has a delivery report (serving the reports on this
    /// thread), or `timeout` passes. True when all were reported.
    func flush(timeout: Duration) -> Bool {
        rd_kafka_flush(rk, timeout.rdKafkaMilliseconds) == RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// Drops everything queued or in flight; their reports come with a purge error.
    func purge() {
        _ = rd_kafka_purge(rk, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }
}

extension Duration {
    /// Whole milliseconds, clamped to librdkafka's `int` timeouts.
    var rdKafkaMilliseconds: Int32 {
        Int32(clamping: components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}
