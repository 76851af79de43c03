/// The CopyData messages of a START_REPLICATION stream that wrap pgoutput: XLogData from
/// the server, primary keepalives, and the client's standby status update.
public enum ReplicationMessage: Sendable, Equatable {
    /// WAL data; `payload` is the range of the pgoutput message inside the CopyData bytes.
    case xLogData(walStart: LSN, walEnd: LSN, sendTime: Int64, payload: Range<Int>)
    /// The server's heartbeat; reply promptly when `replyRequested`, or the server drops us
    /// after `wal_sender_timeout`.
    case keepalive(walEnd: LSN, sendTime: Int64, replyRequested: Bool)

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(PGOutputError) -> ReplicationMessage {
        var reader = ByteReader(bytes)
        switch try reader.uint8("CopyData message type") {
        case UInt8(ascii: "w"):
            let start = try reader.lsn("XLogData start"), end = try reader.lsn("XLogData end")
            let time = try reader.int64("XLogData send time")
            return .xLogData(walStart: start, walEnd: end, sendTime: time, payload: reader.offset..<bytes.count)
        case UInt8(ascii: "k"):
            let end = try reader.lsn("keepalive WAL end")
            let time = try reader.int64("keepalive send time")
            let reply = try reader.uint8("keepalive reply flag")
            return .keepalive(walEnd: end, sendTime: time, replyRequested: reply == 1)
        case let other:
            throw PGOutputError(.unknownMessage, "unknown replication CopyData message type \(other) at byte 0")
        }
    }

    public static func parse(_ bytes: [UInt8]) throws(PGOutputError) -> ReplicationMessage {
        var result: Result<ReplicationMessage, PGOutputError>!
        bytes.withUnsafeBytes { raw in
            do throws(PGOutputError) { result = .success(try parse(raw)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// Encodes a standby status update ('r'): positions received, flushed (safe to discard
    /// upstream) and applied, plus the client clock.
    public static func standbyStatusUpdate(written: LSN, flushed: LSN, applied: LSN,
                                           clientTime: Int64, replyRequested: Bool = false) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "r")]
        out.reserveCapacity(34)
        for value in [written.rawValue, flushed.rawValue, applied.rawValue, UInt64(bitPattern: clientTime)] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        }
        out.append(replyRequested ? 1 : 0)
        return out
    }
}

/// PostgreSQL timestamps count microseconds from 2000-01-01 UTC.
public enum PostgresEpoch {
    /// Seconds between the Unix epoch and 2000-01-01.
    public static let unixOffsetSeconds: Int64 = 946_684_800

    public static func fromUnixMicroseconds(_ micros: Int64) -> Int64 { micros - unixOffsetSeconds * 1_000_000 }
    public static func toUnixMicroseconds(_ pgMicros: Int64) -> Int64 { pgMicros + unixOffsetSeconds * 1_000_000 }
}
