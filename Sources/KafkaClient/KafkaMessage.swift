/// A consumed record.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [(String, [UInt8])]
    /// The record's timestamp, milliseconds since 1970 (CreateTime: when the producer
    /// produced it, or LogAppendTime if the topic says so); nil if the broker sent none.
    public var timestampMilliseconds: Int64?

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], headers: [(String, [UInt8])],
                timestampMilliseconds: Int64? = nil) {
        self.topic = topic; self.partition = partition; self.offset = offset
        self.key = key; self.value = value; self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
    }

    public func header(_ name: String) -> [UInt8]? { headers.first { $0.0 == name }?.1 }
}

/// A partition of a topic.
public struct TopicPartition: Hashable, Sendable {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) { self.topic = topic; self.partition = partition }
}
