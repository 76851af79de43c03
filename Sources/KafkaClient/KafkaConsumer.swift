internal import CRdKafka
import Foundation
public import Logging
import Synchronization

/// A consumer-group member on librdkafka's high-level consumer, with manual offset commits.
///
/// Its methods block, so run it on a dedicated thread. Rebalance callbacks run inside
/// `poll`, on that same thread: `onRevoke` can commit what was processed before the
/// partitions go, which is what makes effects exactly-once across rebalances.
public final class KafkaConsumer: @unchecked Sendable {
    public static let defaultProperties: [String: String] = [
        "enable.auto.commit": "false",         // offsets are committed after the database commit
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range,roundrobin",
        "session.timeout.ms": "10000",
        "heartbeat.interval.ms": "1000",
        "fetch.wait.max.ms": "10",             // low latency: the broker answers a fetch within 10 ms
        "queued.max.messages.kbytes": "16384",  // bounded prefetch memory
        "topic.metadata.refresh.interval.ms": "5000",  // notice newly created topics within seconds
    ]

    private let handle: RDKafkaHandle
    private let context: Unmanaged<ConsumerContext>
    private let closed = Atomic<Bool>(false)

    public init(configuration: KafkaConfiguration, groupID: String, logger: Logger,
                onAssign: @escaping @Sendable ([TopicPartition]) -> Void = { _ in },
                onRevoke: @escaping @Sendable ([TopicPartition]) -> Void = { _ in }) throws(KafkaError) {
        var defaults = KafkaConsumer.defaultProperties
        defaults["group.id"] = groupID
        let conf = try makeRDKafkaConf(defaults: defaults, configuration: configuration)
        let context = ConsumerContext(logger: logger, onAssign: onAssign, onRevoke: onRevoke)
        let unmanaged = Unmanaged.passRetained(context)
        rd_kafka_conf_set_opaque(conf, unmanaged.toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf, consumerRebalanceCallback)
        rd_kafka_conf_set_error_cb(conf, consumerErrorCallback)
        rd_kafka_conf_set_log_cb(conf, rdkafkaLogCallback)
        var errorBuffer = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errorBuffer, errorBuffer.count) else {
            rd_kafka_conf_destroy(conf)
            unmanaged.release()
            throw KafkaError(code: .configuration, message: "could not create the Kafka consumer: \(errorString(errorBuffer))")
        }
        rd_kafka_poll_set_consumer(rk)
        handle = RDKafkaHandle(rk)
        self.context = unmanaged
    }

    deinit { close() }

    public func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let err = rd_kafka_subscribe(handle.rk, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(code: .consumer, err: err, context: "subscribing to \(topics.joined(separator: ","))")
        }
    }

    /// Waits up to `timeout` for the next message. Partition EOF and transient errors return
    /// nil; errors that need attention throw.
    public func poll(timeout: Duration) throws(KafkaError) -> KafkaMessage? {
        // A broker refused the credentials or the certificate (reported to the error
        // callback during an earlier poll): fail closed instead of polling on.
        if let failure = context.takeUnretainedValue().securityFailure { throw failure }
        let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard let message = rd_kafka_consumer_poll(handle.rk, ms) else { return nil }
        defer { rd_kafka_message_destroy(message) }
        let m = message.pointee
        if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF || KafkaError.retriable(m.err) { return nil }
            // A refused login or certificate: name the cause and the setting to fix.
            let reason = rd_kafka_message_errstr(message).map { String(cString: $0) } ?? ""
            if let failure = KafkaSecurityFailure.classify(name: String(cString: rd_kafka_err2name(m.err)), reason: reason) {
                throw failure
            }
            throw KafkaError(code: .consumer, err: m.err, context: "consuming")
        }
        let topic = String(cString: rd_kafka_topic_name(m.rkt))
        let key: [UInt8]? = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        let value: [UInt8] = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        var headers: [(String, [UInt8])] = []
        var rdHeaders: OpaquePointer?
        if rd_kafka_message_headers(message, &rdHeaders) == RD_KAFKA_RESP_ERR_NO_ERROR, let rdHeaders {
            var index = 0
            var name: UnsafePointer<CChar>?
            var valuePointer: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(rdHeaders, index, &name, &valuePointer, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append((String(cString: name!), valuePointer.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
                index += 1
            }
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        return KafkaMessage(topic: topic, partition: m.partition, offset: m.offset, key: key, value: value, headers: headers,
                            timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || timestamp < 0 ? nil : timestamp)
    }

    /// Commits `offsets`, the NEXT offsets to read (last processed + 1). Synchronous by
    /// default. `asynchronously` queues the commit and returns at once: a failure is then
    /// never reported, so use it only where a lost commit costs a redelivery the caller
    /// deduplicates, and commit synchronously before giving partitions up.
    public func commit(_ offsets: [TopicPartition: Int64], asynchronously: Bool = false) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(offsets.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (tp, offset) in offsets {
            rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!.pointee.offset = offset
        }
        let err = rd_kafka_commit(handle.rk, list, asynchronously ? 1 : 0)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else {
            throw KafkaError(code: .consumer, err: err, context: "committing offsets")
        }
    }

    /// Committed offsets for `partitions` (next offset to read; -1001 when none).
    public func committed(_ partitions: [TopicPartition], timeout: Duration = .seconds(5)) throws(KafkaError) -> [TopicPartition: Int64] {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for tp in partitions { rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition) }
        let ms = Int32(clamping: timeout.components.seconds * 1000)
        let err = rd_kafka_committed(handle.rk, list, ms)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .consumer, err: err, context: "reading committed offsets") }
        var result: [TopicPartition: Int64] = [:]
        for i in 0..<Int(list!.pointee.cnt) {
            let e = list!.pointee.elems[i]
            result[TopicPartition(topic: String(cString: e.topic), partition: e.partition)] = e.offset
        }
        return result
    }

    /// Messages behind the high watermark, summed over the current assignment, from the
    /// consumer's position. Note: Tansu 0.6 reports watermarks inaccurately, so against it
    /// this figure is approximate; against Kafka it is exact.
    public func lag(timeout: Duration = .seconds(2)) -> Int64? {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle.rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return nil }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard rd_kafka_position(handle.rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        let ms = Int32(clamping: timeout.components.seconds * 1000)
        var total: Int64 = 0
        for i in 0..<Int(list.pointee.cnt) {
            let e = list.pointee.elems[i]
            var low: Int64 = 0, high: Int64 = 0
            guard rd_kafka_query_watermark_offsets(handle.rk, e.topic, e.partition, &low, &high, ms) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            let position = e.offset >= 0 ? e.offset : low
            total += max(0, high - position)
        }
        return total
    }

    /// Lag of this consumer's group on `topics` without joining it: committed offsets
    /// against high watermarks, per partition from the cluster metadata. nil entries mean
    /// the group has no committed offset there yet (the whole partition is lag).
    public func groupLag(topics: [String], timeout: Duration = .seconds(5)) throws(KafkaError) -> Int64 {
        let ms = Int32(clamping: timeout.components.seconds * 1000)
        var partitions: [TopicPartition] = []
        for topic in topics {
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let rkt = rd_kafka_topic_new(handle.rk, topic, nil)
            defer { rd_kafka_topic_destroy(rkt) }
            let err = rd_kafka_metadata(handle.rk, 0, rkt, &metadata, ms)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError(code: .unreachable, err: err, context: "reading metadata for \(topic)")
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            for t in 0..<Int(metadata.pointee.topic_cnt) {
                let md = metadata.pointee.topics[t]
                for p in 0..<Int(md.partition_cnt) {
                    partitions.append(TopicPartition(topic: String(cString: md.topic), partition: md.partitions[p].id))
                }
            }
        }
        guard !partitions.isEmpty else { return 0 }
        let committed = try committed(partitions, timeout: timeout)
        var total: Int64 = 0
        for tp in partitions {
            var low: Int64 = 0, high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(handle.rk, tp.topic, tp.partition, &low, &high, ms)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .unreachable, err: err, context: "reading watermarks") }
            let position = committed[tp].flatMap { $0 >= 0 ? $0 : nil } ?? low
            total += max(0, high - position)
        }
        return total
    }

    /// Current assignment.
    public func assignment() -> [TopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle.rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return (0..<Int(list.pointee.cnt)).map {
            TopicPartition(topic: String(cString: list.pointee.elems[$0].topic), partition: list.pointee.elems[$0].partition)
        }
    }

    /// Leaves the group (running the revoke callback, so offsets can be committed) and
    /// destroys the consumer.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = rd_kafka_consumer_close(handle.rk)
        rd_kafka_destroy(handle.rk)
        context.release()
    }
}

final class ConsumerContext: ClientContext, @unchecked Sendable {
    let onAssign: @Sendable ([TopicPartition]) -> Void
    let onRevoke: @Sendable ([TopicPartition]) -> Void
    private let firstSecurityFailure = Mutex<KafkaError?>(nil)
    init(logger: Logger, onAssign: @escaping @Sendable ([TopicPartition]) -> Void, onRevoke: @escaping @Sendable ([TopicPartition]) -> Void) {
        self.onAssign = onAssign; self.onRevoke = onRevoke
        super.init(logger: logger)
    }
    /// The first authentication or TLS failure the error callback saw; it stays set.
    var securityFailure: KafkaError? { firstSecurityFailure.withLock { $0 } }
    func recordSecurityFailure(_ error: KafkaError) {
        firstSecurityFailure.withLock { if $0 == nil { $0 = error } }
    }
}

/// Global errors (served inside `poll`). Without this callback librdkafka only logs them,
/// so a refused login or certificate would leave the consumer polling forever.
private func consumerErrorCallback(_ rk: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    let context = Unmanaged<ConsumerContext>.fromOpaque(opaque).takeUnretainedValue()
    let code = rd_kafka_resp_err_t(rawValue: err)
    let text = reason.map { String(cString: $0) } ?? ""
    if let failure = KafkaSecurityFailure.classify(name: String(cString: rd_kafka_err2name(code)), reason: text) {
        context.logger.error("kafka broker refused this client", metadata: ["error": "\(failure)"])
        context.recordSecurityFailure(failure)
    } else {
        context.logger.warning("kafka client error", metadata: ["error": "\(KafkaError(code: .consumer, err: code, context: text))"])
    }
}

private func consumerRebalanceCallback(_ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
                                       _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                                       _ opaque: UnsafeMutableRawPointer?) {
    guard let rk, let opaque else { return }
    let context = Unmanaged<ConsumerContext>.fromOpaque(opaque).takeUnretainedValue()
    let list: [TopicPartition] = partitions.map { p in
        (0..<Int(p.pointee.cnt)).map { TopicPartition(topic: String(cString: p.pointee.elems[$0].topic), partition: p.pointee.elems[$0].partition) }
    } ?? []
    switch err {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        context.onAssign(list)
        _ = rd_kafka_assign(rk, partitions)
    default:
        context.onRevoke(list)  // commit processed offsets before giving the partitions up
        _ = rd_kafka_assign(rk, nil)
    }
}
