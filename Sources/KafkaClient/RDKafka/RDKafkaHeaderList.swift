internal import CRdKafka

/// librdkafka's `rd_kafka_headers_t`: the calls behind `KafkaHeaders`, and reading the
/// headers of a message librdkafka holds (a consumed one, or one whose delivery failed).
enum RDKafkaHeaderList {
    static func new(capacity: Int) -> OpaquePointer? { rd_kafka_headers_new(capacity) }

    /// Copies `name` (`nameLength` bytes, or NUL-terminated when -1) and `value` into the list.
    static func add(_ list: OpaquePointer?, name: UnsafePointer<CChar>, nameLength: Int, value: UnsafeRawBufferPointer) {
        _ = rd_kafka_header_add(list, name, nameLength, value.baseAddress, value.count)
    }

    static func destroy(_ list: OpaquePointer) { rd_kafka_headers_destroy(list) }

    /// The headers of `message`, copied out in order.
    static func copy(of message: UnsafePointer<rd_kafka_message_t>) -> [(String, [UInt8])] {
        var headers: [(String, [UInt8])] = []
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return headers }
        var index = 0
        var name: UnsafePointer<CChar>?
        var bytes: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            headers.append((name.map { String(cString: $0) } ?? "", bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
            index += 1
        }
        return headers
    }
}
