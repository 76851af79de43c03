/// Size rules for one Kafka record, checked before producing so that one oversized row
/// is dead-lettered alone and never fails the batch it would have shared.
public enum RecordLimits {
    /// librdkafka's default `message.max.bytes`. Default: 1,000,000.
    public static let defaultMaxMessageBytes = 1_000_000
    /// Bytes librdkafka adds per record and per header on top of the key and value
    /// (record framing, varints, timestamp). Generous, so a row that passes also passes
    /// librdkafka's own check.
    public static let recordOverhead = 128
    public static let headerOverhead = 16

    /// The estimated size of a record, as librdkafka measures it against message.max.bytes.
    public static func estimatedSize(key: Int, value: Int, headerNameAndValueBytes: Int, headerCount: Int) -> Int {
        recordOverhead + key + value + headerNameAndValueBytes + headerCount * headerOverhead
    }
}
