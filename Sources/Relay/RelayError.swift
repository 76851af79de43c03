/// A relay failure that an operator must act on, or that the relay recovers from.
///
/// `message` says what is wrong and `fix` says what to do; neither ever contains a
/// password or a full connection string.
public struct RelayError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }
        /// `wal_level` is not `logical`.
        public static let walLevelNotLogical = Code("wal_level_not_logical")
        /// The role may not open replication connections.
        public static let missingReplicationPrivilege = Code("missing_replication_privilege")
        /// The slot uses another output plugin, or belongs to another database.
        public static let slotMisconfigured = Code("slot_misconfigured")
        /// The slot is missing and creating it is disabled, or it vanished while we ran.
        public static let slotMissing = Code("slot_missing")
        /// PostgreSQL invalidated the slot (`wal_status = lost`): WAL it needed is gone.
        public static let slotInvalidated = Code("slot_invalidated")
        /// The slot's confirmed position moved past what this relay confirmed.
        public static let slotMovedAhead = Code("slot_moved_ahead")
        /// The publication is missing and creating it is disabled, or it is not insert-only.
        public static let publicationMisconfigured = Code("publication_misconfigured")
        /// Another relay is streaming from the slot; this one waits as a standby.
        public static let slotInUse = Code("slot_in_use")
        /// A table the relay needs is missing: run `outbox-relay migrate`.
        public static let schemaOutdated = Code("schema_outdated")
        /// The configuration is invalid.
        public static let invalidConfiguration = Code("invalid_configuration")
        /// The replication stream sent something this relay cannot decode.
        public static let protocolError = Code("protocol_error")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String
    public var fix: String?
    /// Halting errors stop the relay instead of reconnecting: retrying cannot help and
    /// could skip rows.
    public var isHalting: Bool

    public init(_ code: Code, _ message: String, fix: String? = nil, halting: Bool = true) {
        self.code = code
        self.message = message
        self.fix = fix
        self.isHalting = halting
    }

    public var description: String {
        "\(message)" + (fix.map { " Fix: \($0)" } ?? "")
    }
}
