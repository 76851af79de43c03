import KafkaClient
import PGOutput
import Schema

/// The headers of a captured row's record (`RecordContract.Header`), built straight into
/// librdkafka's list from the message bytes.
enum RowHeaders {
    typealias H = RecordContract.Header

    static func make(for row: OutboxRowView) -> KafkaHeaders {
        var headers = KafkaHeaders(capacity: 4)
        headers.add(H.outboxID, row.idText)
        headers.add(H.type, row.type)
        headers.add(H.createdAt, row.createdAt)
        if let trace = row.traceParent, !trace.isEmpty { headers.add(H.traceParent, trace) }
        return headers
    }

    /// How many headers `make` adds and their name plus value bytes, for `RecordLimits`.
    static func measure(_ row: OutboxRowView) -> (count: Int, bytes: Int) {
        var count = 3
        var bytes = H.outboxID.utf8.count + row.idText.count + H.type.utf8.count + row.type.count
            + H.createdAt.utf8.count + row.createdAt.count
        if let trace = row.traceParent, !trace.isEmpty {
            count += 1
            bytes += H.traceParent.utf8.count + trace.count
        }
        return (count, bytes)
    }

    /// The same headers as a list, for a row copied out of the stream.
    static func list(for row: OutboxRow) -> [(String, [UInt8])] {
        var headers: [(String, [UInt8])] = [
            (H.outboxID, Array(String(row.id).utf8)), (H.type, Array(row.type.utf8)), (H.createdAt, Array(row.createdAt.utf8)),
        ]
        if let trace = row.traceParent, !trace.isEmpty { headers.append((H.traceParent, Array(trace.utf8))) }
        return headers
    }
}
