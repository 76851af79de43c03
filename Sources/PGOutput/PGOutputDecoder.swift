/// Decodes pgoutput messages (logical replication protocol versions 1 and 2).
///
/// Stateful because the wire format is: inside a Stream Start…Stream Stop block, change
/// messages carry an extra leading xid, and Relation messages feed a cache that later
/// Inserts refer to. It performs no I/O and never traps on bad input.
public struct PGOutputDecoder: Sendable {
    public private(set) var relations: [UInt32: Relation] = [:]
    /// The row of the last Insert/Update (new tuple) or Delete (old/key tuple).
    public private(set) var newTuple: [ColumnValue] = []
    public private(set) var inStreamBlock = false
    private var relationVersion = 0

    public init() {}

    /// Decodes one message. `streamed` forces the in-stream-block layout (xid-prefixed
    /// changes), used when replaying buffered changes of a streamed transaction.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer, streamed: Bool? = nil) throws(PGOutputError) -> PGOutputMessage {
        var reader = ByteReader(bytes)
        let kind = try reader.uint8("message type")
        let hasXid = streamed ?? inStreamBlock
        switch kind {
        case UInt8(ascii: "B"):
            let final = try reader.lsn("Begin final LSN")
            let time = try reader.int64("Begin commit timestamp")
            let xid = try reader.uint32("Begin xid")
            try end(reader, "Begin")
            return .begin(.init(finalLSN: final, commitTime: time, xid: xid))
        case UInt8(ascii: "C"):
            let commit = try readCommit(&reader)
            try end(reader, "Commit")
            return .commit(commit)
        case UInt8(ascii: "R"):
            let xid = hasXid ? try reader.uint32("Relation xid") : nil
            _ = xid
            var relation = try readRelation(&reader)
            try end(reader, "Relation")
            relationVersion += 1
            relation.version = relationVersion
            relations[relation.oid] = relation
            return .relation(relation)
        case UInt8(ascii: "I"):
            let xid = hasXid ? try reader.uint32("Insert xid") : nil
            let rel = try reader.uint32("Insert relation OID")
            let marker = try reader.uint8("Insert 'N' marker")
            guard marker == UInt8(ascii: "N") else {
                throw PGOutputError(.malformed, "Insert: expected 'N' before the new tuple at byte \(reader.offset - 1), got \(marker)")
            }
            try readTuple(&reader)
            try end(reader, "Insert")
            return .insert(relationID: rel, xid: xid)
        case UInt8(ascii: "U"):
            let xid = hasXid ? try reader.uint32("Update xid") : nil
            let rel = try reader.uint32("Update relation OID")
            var marker = try reader.uint8("Update tuple marker")
            if marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") {
                try readTuple(&reader)
                marker = try reader.uint8("Update 'N' marker")
            }
            guard marker == UInt8(ascii: "N") else {
                throw PGOutputError(.malformed, "Update: expected 'N' at byte \(reader.offset - 1), got \(marker)")
            }
            try readTuple(&reader)
            try end(reader, "Update")
            return .update(relationID: rel, xid: xid)
        case UInt8(ascii: "D"):
            let xid = hasXid ? try reader.uint32("Delete xid") : nil
            let rel = try reader.uint32("Delete relation OID")
            let marker = try reader.uint8("Delete tuple marker")
            guard marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") else {
                throw PGOutputError(.malformed, "Delete: expected 'K' or 'O' at byte \(reader.offset - 1), got \(marker)")
            }
            try readTuple(&reader)
            try end(reader, "Delete")
            return .delete(relationID: rel, xid: xid)
        case UInt8(ascii: "T"):
            let xid = hasXid ? try reader.uint32("Truncate xid") : nil
            let count = try reader.uint32("Truncate relation count")
            let options = try reader.uint8("Truncate options")
            try reader.need(Int(count) * 4, "Truncate relation OIDs")
            var ids: [UInt32] = []
            for _ in 0..<count { ids.append(try reader.uint32("Truncate relation OID")) }
            try end(reader, "Truncate")
            return .truncate(xid: xid, relationIDs: ids, options: options)
        case UInt8(ascii: "Y"):
            let xid = hasXid ? try reader.uint32("Type xid") : nil
            let oid = try reader.uint32("Type OID")
            let namespace = try reader.cString("Type namespace")
            let name = try reader.cString("Type name")
            try end(reader, "Type")
            return .type(xid: xid, oid: oid, namespace: namespace, name: name)
        case UInt8(ascii: "O"):
            let lsn = try reader.lsn("Origin LSN")
            let name = try reader.cString("Origin name")
            try end(reader, "Origin")
            return .origin(lsn: lsn, name: name)
        case UInt8(ascii: "M"):
            let xid = hasXid ? try reader.uint32("Message xid") : nil
            let flags = try reader.uint8("Message flags")
            let lsn = try reader.lsn("Message LSN")
            let prefix = try reader.cString("Message prefix")
            let length = try reader.int32("Message content length")
            let content = try reader.range(Int(length), "Message content")
            try end(reader, "Message")
            return .logicalMessage(xid: xid, transactional: flags & 1 == 1, lsn: lsn, prefix: prefix, content: content)
        case UInt8(ascii: "S"):
            guard !inStreamBlock else {
                throw PGOutputError(.outOfOrder, "Stream Start inside a stream block that was never stopped")
            }
            let xid = try reader.uint32("Stream Start xid")
            let first = try reader.uint8("Stream Start first-segment flag")
            try end(reader, "Stream Start")
            inStreamBlock = true
            return .streamStart(xid: xid, firstSegment: first == 1)
        case UInt8(ascii: "E"):
            guard inStreamBlock else {
                throw PGOutputError(.outOfOrder, "Stream Stop without a Stream Start")
            }
            try end(reader, "Stream Stop")
            inStreamBlock = false
            return .streamStop
        case UInt8(ascii: "c"):
            let xid = try reader.uint32("Stream Commit xid")
            let commit = try readCommit(&reader)
            try end(reader, "Stream Commit")
            return .streamCommit(xid: xid, commit: commit)
        case UInt8(ascii: "A"):
            let xid = try reader.uint32("Stream Abort xid")
            let subxid = try reader.uint32("Stream Abort subxid")
            // Protocol v4 (PG16+) appends abort LSN and time; tolerate them.
            return .streamAbort(xid: xid, subxid: subxid)
        default:
            throw PGOutputError(.unknownMessage, "unknown pgoutput message type \(kind) (\"\(Character(Unicode.Scalar(kind)))\") at byte 0")
        }
    }

    /// Convenience for tests and tools: decodes a byte array.
    public mutating func decode(_ bytes: [UInt8], streamed: Bool? = nil) throws(PGOutputError) -> PGOutputMessage {
        var result: Result<PGOutputMessage, PGOutputError>!
        bytes.withUnsafeBytes { raw in
            do throws(PGOutputError) { result = .success(try decode(raw, streamed: streamed)) }
            catch { result = .failure(error) }
        }
        return try result.get()
    }

    private func readCommit(_ reader: inout ByteReader) throws(PGOutputError) -> PGOutputMessage.Commit {
        let flags = try reader.uint8("Commit flags")
        let commitLSN = try reader.lsn("Commit LSN")
        let endLSN = try reader.lsn("Commit end LSN")
        let time = try reader.int64("Commit timestamp")
        return .init(flags: flags, commitLSN: commitLSN, endLSN: endLSN, commitTime: time)
    }

    private func readRelation(_ reader: inout ByteReader) throws(PGOutputError) -> Relation {
        let oid = try reader.uint32("Relation OID")
        let namespace = try reader.cString("Relation namespace")
        let name = try reader.cString("Relation name")
        let identity = try reader.uint8("Relation replica identity")
        let count = Int(try reader.uint16("Relation column count"))
        var columns: [Relation.Column] = []
        columns.reserveCapacity(count)
        for _ in 0..<count {
            let flags = try reader.uint8("Relation column flags")
            let columnName = try reader.cString("Relation column name")
            let type = try reader.uint32("Relation column type OID")
            let modifier = try reader.int32("Relation column type modifier")
            columns.append(.init(isKey: flags & 1 == 1, name: columnName, typeOID: type, typeModifier: modifier))
        }
        return Relation(oid: oid, namespace: namespace, name: name, replicaIdentity: identity, columns: columns)
    }

    private mutating func readTuple(_ reader: inout ByteReader) throws(PGOutputError) {
        let count = Int(try reader.uint16("TupleData column count"))
        newTuple.removeAll(keepingCapacity: true)
        for _ in 0..<count {
            let kind = try reader.uint8("TupleData column kind")
            switch kind {
            case UInt8(ascii: "n"): newTuple.append(.null)
            case UInt8(ascii: "u"): newTuple.append(.unchangedToast)
            case UInt8(ascii: "t"), UInt8(ascii: "b"):
                let length = try reader.int32("TupleData value length")
                guard length >= 0 else {
                    throw PGOutputError(.malformed, "TupleData value length \(length) is negative at byte \(reader.offset - 4)")
                }
                let range = try reader.range(Int(length), "TupleData value")
                newTuple.append(kind == UInt8(ascii: "t") ? .text(range) : .binary(range))
            default:
                throw PGOutputError(.malformed, "TupleData: unknown column kind \(kind) at byte \(reader.offset - 1); expected n, u, t or b")
            }
        }
    }

    private func end(_ reader: ByteReader, _ what: StaticString) throws(PGOutputError) {
        guard reader.remaining == 0 else {
            throw PGOutputError(.malformed, "\(what): \(reader.remaining) unexpected trailing bytes at byte \(reader.offset)")
        }
    }
}
