/// The outcome of one produced message, from librdkafka's delivery report.
public struct DeliveryReport: Sendable {
    /// The caller's token given to `produce`.
    public var token: UInt64
    public var partition: Int32
    public var offset: Int64
    /// nil when the broker acknowledged the message.
    public var error: KafkaError?
}
