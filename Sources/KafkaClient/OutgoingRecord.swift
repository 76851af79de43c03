/// A record for `sendInOrder`: copied into librdkafka when produced.
public struct OutgoingRecord: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [(String, [UInt8])]
    public init(topic: String, key: [UInt8]?, value: [UInt8], headers: [(String, [UInt8])] = []) {
        self.topic = topic; self.key = key; self.value = value; self.headers = headers
    }
}
