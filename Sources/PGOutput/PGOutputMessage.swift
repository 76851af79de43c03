/// One decoded pgoutput message (protocol versions 1 and 2).
///
/// Tuple data is not copied into the message: after an Insert, Update or Delete the
/// decoder's `newTuple` holds column values as ranges of the message bytes, valid while
/// those bytes are. That keeps the hot path free of per-column allocations.
public enum PGOutputMessage: Sendable, Equatable {
    case begin(Begin)
    case commit(Commit)
    case relation(Relation)
    /// A row insert; the row is in `PGOutputDecoder.newTuple`.
    case insert(relationID: UInt32, xid: UInt32?)
    /// A row update; the new row is in `newTuple`. pgoutput sends these only if the
    /// publication publishes updates; the relay ignores them.
    case update(relationID: UInt32, xid: UInt32?)
    case delete(relationID: UInt32, xid: UInt32?)
    case truncate(xid: UInt32?, relationIDs: [UInt32], options: UInt8)
    case type(xid: UInt32?, oid: UInt32, namespace: String, name: String)
    case origin(lsn: LSN, name: String)
    /// `pg_logical_emit_message`; `content` is a range of the message bytes.
    case logicalMessage(xid: UInt32?, transactional: Bool, lsn: LSN, prefix: String, content: Range<Int>)
    case streamStart(xid: UInt32, firstSegment: Bool)
    case streamStop
    case streamCommit(xid: UInt32, commit: Commit)
    /// `subxid == xid` aborts the whole streamed transaction; otherwise one subtransaction.
    case streamAbort(xid: UInt32, subxid: UInt32)

    public struct Begin: Sendable, Equatable {
        /// LSN of the commit record: the transaction's position in commit order.
        public var finalLSN: LSN
        /// Microseconds since 2000-01-01 UTC (PostgreSQL epoch).
        public var commitTime: Int64
        public var xid: UInt32
        public init(finalLSN: LSN, commitTime: Int64, xid: UInt32) {
            self.finalLSN = finalLSN; self.commitTime = commitTime; self.xid = xid
        }
    }

    public struct Commit: Sendable, Equatable {
        public var flags: UInt8
        public var commitLSN: LSN
        /// End of the commit record: the position to confirm once the transaction is done.
        public var endLSN: LSN
        public var commitTime: Int64
        public init(flags: UInt8, commitLSN: LSN, endLSN: LSN, commitTime: Int64) {
            self.flags = flags; self.commitLSN = commitLSN; self.endLSN = endLSN; self.commitTime = commitTime
        }
    }
}

/// A table's shape as announced by a Relation message; sent before the first change to
/// a table in a session and again after its definition changes.
public struct Relation: Sendable, Equatable {
    public struct Column: Sendable, Equatable {
        public var isKey: Bool
        public var name: String
        public var typeOID: UInt32
        public var typeModifier: Int32
        public init(isKey: Bool, name: String, typeOID: UInt32, typeModifier: Int32) {
            self.isKey = isKey; self.name = name; self.typeOID = typeOID; self.typeModifier = typeModifier
        }
    }
    public var oid: UInt32
    public var namespace: String
    public var name: String
    public var replicaIdentity: UInt8
    public var columns: [Column]
    /// Bumped each time the relation is re-announced, so caches keyed on it notice.
    public var version: Int
    public init(oid: UInt32, namespace: String, name: String, replicaIdentity: UInt8, columns: [Column], version: Int = 0) {
        self.oid = oid; self.namespace = namespace; self.name = name
        self.replicaIdentity = replicaIdentity; self.columns = columns; self.version = version
    }
}

/// One column of a decoded row; text and binary values are ranges of the message bytes.
public enum ColumnValue: Sendable, Equatable {
    case null
    /// An unchanged TOASTed value that pgoutput did not send.
    case unchangedToast
    case text(Range<Int>)
    case binary(Range<Int>)
}
