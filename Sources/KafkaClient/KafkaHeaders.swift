/// Message headers built straight into librdkafka's header list (each value is copied in
/// by `add`), so producing a message needs no intermediate Swift arrays. Non-copyable: the
/// list belongs to exactly one message; `produce` takes it, and an unused list is freed.
public struct KafkaHeaders: ~Copyable {
    fileprivate var raw: OpaquePointer?

    public init(capacity: Int = 4) {
        raw = RDKafkaHeaderList.new(capacity: capacity)
    }

    public init(_ headers: [(String, [UInt8])]) {
        self.init(capacity: headers.count)
        for (name, value) in headers { add(name, value) }
    }

    public mutating func add(_ name: StaticString, _ value: UnsafeRawBufferPointer) {
        name.withUTF8Buffer { nameBytes in
            RDKafkaHeaderList.add(raw, name: UnsafeRawPointer(nameBytes.baseAddress!).assumingMemoryBound(to: CChar.self),
                                  nameLength: nameBytes.count, value: value)
        }
    }

    /// `withCString`, not the implicit String-to-pointer conversion: that one allocates a
    /// C copy of every small (up to 15-byte) string, such as most header names, on every
    /// call, where `withCString` copies it to the stack (seen in a drain's profile: a heap
    /// allocation and release per header per row).
    public mutating func add(_ name: String, _ value: UnsafeRawBufferPointer) {
        name.withCString { RDKafkaHeaderList.add(raw, name: $0, nameLength: -1, value: value) }
    }

    public mutating func add(_ name: String, _ value: [UInt8]) {
        value.withUnsafeBytes { bytes in add(name, bytes) }
    }

    /// Hands the list to librdkafka (which frees it with the message) or to the caller.
    consuming func take() -> OpaquePointer? {
        let raw = self.raw
        discard self
        return raw
    }

    deinit {
        if let raw { RDKafkaHeaderList.destroy(raw) }
    }
}
