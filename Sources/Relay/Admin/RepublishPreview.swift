import PostgresClient
public import RelayCore

/// The dry run of `redrive` and `replay`: what the selection holds, changing nothing. Two
/// read-only statements: counts per topic, status and reason, and the first rows.
public struct RepublishPreview: Sendable, Equatable {
    public struct Group: Sendable, Equatable {
        public var topic: String
        public var status: String
        /// The dead-letter reason code (`last_error` up to its first colon); empty if none.
        public var reason: String
        public var count: Int
        public var firstID: Int64
        public var lastID: Int64
    }

    public struct Row: Sendable, Equatable {
        public var id: Int64
        public var topic: String
        public var key: String
        public var type: String
        public var status: String
        public var createdAt: String
        public var lastError: String?
    }

    public var groups: [Group]
    public var firstRows: [Row]
    public var total: Int { groups.reduce(0) { $0 + $1.count } }

    public static func read(configuration: RelayConfiguration, selection: RowSelection, afterID: Int64,
                            sample: Int = 20) async throws -> RepublishPreview {
        let connection = try await PGConnection.connect(configuration.databaseURL, applicationName: "\(configuration.applicationName)-dry-run")
        let summary = selection.summaryStatement(afterID: afterID)
        let groups = try await connection.query(summary.sql, summary.parameters.map(PGValue.text)).rows.map { row in
            Group(topic: try row.string("topic"), status: try row.string("status"), reason: try row.string("reason"),
                  count: try row.int("n"), firstID: try row.int64("first_id"), lastID: try row.int64("last_id"))
        }
        let first = selection.sampleStatement(afterID: afterID, limit: sample)
        let rows = try await connection.query(first.sql, first.parameters.map(PGValue.text)).rows.map { row in
            Row(id: try row.int64("outbox_id"), topic: try row.string("topic"), key: try row.string("mq_key"), type: try row.string("type"),
                status: try row.string("status"), createdAt: try row.string("created_at"), lastError: try row.optionalString("last_error"))
        }
        return RepublishPreview(groups: groups, firstRows: rows)
    }
}
