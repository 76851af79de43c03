/// The outcome of one produced message, from librdkafka's delivery report.
public struct DeliveryReport: Sendable {
    /// The caller's token given to `produce`.
    public var token: UInt64
    public var partition: Int32
    public var offset: Int64
    /// Key plus value bytes, so callers can release what they reserved for the message
    /// without keeping a per-message record.
    public var size: Int
    /// nil when the broker acknowledged the message.
    public var error: KafkaError?
    /// The message itself, copied only when delivery failed (for dead-lettering).
    public var failed: FailedMessage?
}

/// A message whose delivery failed, as librdkafka still held it.
public struct FailedMessage: Sendable {
    public var topic: String
    public var key: [UInt8]
    public var value: [UInt8]
    public var headers: [(String, [UInt8])]

    public func header(_ name: String) -> [UInt8]? { headers.first { $0.0 == name }?.1 }
}
