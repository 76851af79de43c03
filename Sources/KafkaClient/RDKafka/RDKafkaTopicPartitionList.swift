internal import CRdKafka

/// librdkafka's `rd_kafka_topic_partition_list_t`, to and from Swift.
enum RDKafkaTopicPartitionList {
    typealias List = UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    /// Runs `body` with a list of `entries` (an offset of nil leaves librdkafka's default),
    /// destroyed afterwards.
    static func with<T>(_ entries: [(TopicPartition, Int64?)], _ body: (List) throws(KafkaError) -> T) throws(KafkaError) -> T {
        let list = rd_kafka_topic_partition_list_new(Int32(clamping: entries.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (tp, offset) in entries {
            let element = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!
            if let offset { element.pointee.offset = offset }
        }
        return try body(list)
    }

    /// The partitions of `list` with their offsets, in list order.
    static func entries(_ list: List) -> [(TopicPartition, Int64)] {
        (0..<Int(list.pointee.cnt)).map { i in
            let e = list.pointee.elems[i]
            return (TopicPartition(topic: String(cString: e.topic), partition: e.partition), e.offset)
        }
    }
}
