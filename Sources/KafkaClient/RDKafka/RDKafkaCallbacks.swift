internal import CRdKafka
public import Logging

/// The C callbacks librdkafka calls, each reaching its Swift context through the opaque.
/// Delivery, statistics and error callbacks run inside `rd_kafka_poll`/`rd_kafka_flush`
/// (the producer's poller thread, or whoever flushes); the rebalance and consumer error
/// callbacks inside `rd_kafka_consumer_poll`; the log callback on librdkafka's threads.
enum RDKafkaCallbacks {
    static func installProducer(on conf: OpaquePointer, statistics: Bool) {
        rd_kafka_conf_set_dr_msg_cb(conf, producerDeliveryCallback)
        rd_kafka_conf_set_error_cb(conf, producerErrorCallback)
        if statistics { rd_kafka_conf_set_stats_cb(conf, producerStatisticsCallback) }
        rd_kafka_conf_set_log_cb(conf, logCallback)
    }

    static func installConsumer(on conf: OpaquePointer) {
        rd_kafka_conf_set_rebalance_cb(conf, consumerRebalanceCallback)
        rd_kafka_conf_set_error_cb(conf, consumerErrorCallback)
        rd_kafka_conf_set_log_cb(conf, logCallback)
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
    return FailedMessage(topic: topic, key: key, value: value, headers: RDKafkaHeaderList.copy(of: message))
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
    } else if let failure = classifySecurityFailure(code, reason: text, context: context) {
        context.onError(failure)
    } else {
        let error = KafkaError(code: .delivery, err: code, context: text)
        context.logger.warning("kafka client error", metadata: ["error": "\(error)"])
        context.onError(error)
    }
}

/// Global errors (served inside `poll`). Without this callback librdkafka only logs them,
/// so a refused login or certificate would leave the consumer polling forever.
private func consumerErrorCallback(_ rk: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    let context = Unmanaged<ConsumerContext>.fromOpaque(opaque).takeUnretainedValue()
    let code = rd_kafka_resp_err_t(rawValue: err)
    let text = reason.map { String(cString: $0) } ?? ""
    if classifySecurityFailure(code, reason: text, context: context) == nil {
        context.logger.warning("kafka client error", metadata: ["error": "\(KafkaError(code: .consumer, err: code, context: text))"])
    }
}

/// A refused login or certificate: logged, and recorded on the context (it does not heal
/// by itself, so callers fail closed on it). nil for any other error.
private func classifySecurityFailure(_ code: rd_kafka_resp_err_t, reason: String, context: ClientContext) -> KafkaError? {
    guard let failure = KafkaSecurityFailure.classify(name: String(cString: rd_kafka_err2name(code)), reason: reason) else { return nil }
    context.logger.error("kafka broker refused this client", metadata: ["error": "\(failure)"])
    context.recordSecurityFailure(failure)
    return failure
}

private func consumerRebalanceCallback(_ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
                                       _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                                       _ opaque: UnsafeMutableRawPointer?) {
    guard let rk, let opaque else { return }
    let context = Unmanaged<ConsumerContext>.fromOpaque(opaque).takeUnretainedValue()
    let list = partitions.map { RDKafkaTopicPartitionList.entries($0).map(\.0) } ?? []
    switch err {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        context.onAssign(list)
        _ = rd_kafka_assign(rk, partitions)
    default:
        context.onRevoke(list)  // commit processed offsets before giving the partitions up
        _ = rd_kafka_assign(rk, nil)
    }
}

private func logCallback(_ rk: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ message: UnsafePointer<CChar>?) {
    // librdkafka logs from its own threads; swift-log is thread-safe.
    guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
    let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    let text = message.map { String(cString: $0) } ?? ""
    context.logger.log(level: RDKafkaLogLevel.level(syslog: level), "\(text)", metadata: ["facility": "\(facility.map { String(cString: $0) } ?? "")"])
}
