internal import CRdKafka

/// The group-consumer calls. They block (up to their timeouts): callers run them on a
/// dedicated thread.
extension RDKafkaClient {
    func subscribe(_ topics: [String]) throws(KafkaError) {
        try RDKafkaTopicPartitionList.with(topics.map { (TopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA), nil) }) { list throws(KafkaError) in
            let err = rd_kafka_subscribe(rk, list)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError(code: .consumer, err: err, context: "subscribing to \(topics.joined(separator: ","))")
            }
        }
    }

    /// The next message within `timeout`, serving rebalances and errors meanwhile. Partition
    /// EOF and transient errors return nil; a refused login or certificate throws the
    /// classified failure, any other error throws.
    func consumerPoll(timeout: Duration) throws(KafkaError) -> KafkaMessage? {
        guard let message = rd_kafka_consumer_poll(rk, timeout.rdKafkaMilliseconds) else { return nil }
        defer { rd_kafka_message_destroy(message) }
        let m = message.pointee
        if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF || KafkaError.retriable(m.err) { return nil }
            let reason = rd_kafka_message_errstr(message).map { String(cString: $0) } ?? ""
            if let failure = KafkaSecurityFailure.classify(name: String(cString: rd_kafka_err2name(m.err)), reason: reason) {
                throw failure
            }
            throw KafkaError(code: .consumer, err: m.err, context: "consuming")
        }
        let topic = String(cString: rd_kafka_topic_name(m.rkt))
        let key: [UInt8]? = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        let value: [UInt8] = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        return KafkaMessage(topic: topic, partition: m.partition, offset: m.offset, key: key, value: value,
                            headers: RDKafkaHeaderList.copy(of: message),
                            timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || timestamp < 0 ? nil : timestamp)
    }

    /// Commits `offsets` (the next offsets to read), synchronously unless `asynchronously`.
    func commit(_ offsets: [TopicPartition: Int64], asynchronously: Bool) throws(KafkaError) {
        try RDKafkaTopicPartitionList.with(offsets.map { ($0.key, $0.value) }) { list throws(KafkaError) in
            let err = rd_kafka_commit(rk, list, asynchronously ? 1 : 0)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else {
                throw KafkaError(code: .consumer, err: err, context: "committing offsets")
            }
        }
    }

    /// The group's committed offsets for `partitions` (-1001 where none).
    func committed(_ partitions: [TopicPartition], timeout: Duration) throws(KafkaError) -> [TopicPartition: Int64] {
        try RDKafkaTopicPartitionList.with(partitions.map { ($0, nil) }) { list throws(KafkaError) in
            let err = rd_kafka_committed(rk, list, timeout.rdKafkaMilliseconds)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .consumer, err: err, context: "reading committed offsets") }
            return Dictionary(RDKafkaTopicPartitionList.entries(list), uniquingKeysWith: { $1 })
        }
    }

    /// The current assignment with this consumer's position in each partition (negative
    /// where it has none yet); nil when librdkafka cannot say.
    func positions() -> [(TopicPartition, Int64)]? {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return nil }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard rd_kafka_position(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return RDKafkaTopicPartitionList.entries(list)
    }

    /// The current assignment.
    func assignment() -> [TopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return RDKafkaTopicPartitionList.entries(list).map(\.0)
    }

    /// Leaves the group (serving the revoke callback) and destroys the handle.
    func closeConsumer() {
        _ = rd_kafka_consumer_close(rk)
        destroy()
    }
}
