import Foundation
public import PGOutput
public import PostgresClient
public import RelayCore

/// Reads the write-back registrations and the consumers' read progress (migration 0007)
/// and turns them into each topic's sweep mode through the pure `SweepScope`. Used by the
/// sweeper at every round and by `status`.
public enum SweepScopeReader {
    /// The declared topics and the live registrations, each group with its slowest
    /// partition's read-before time, by topic; a topic absent is publish-only.
    public static func modes(scope: SweepScope, routes: [String: String] = [:], on connection: PGConnection) async throws -> [String: SweepScope.Mode] {
        let (registrations, now) = try await registrations(on: connection)
        return scope.modes(registrations: registrations, now: now, routes: routes)
    }

    /// The registrations with their progress, and the database's now (seconds since 1970).
    public static func registrations(on connection: PGConnection) async throws -> ([SweepScope.Registration], Double) {
        let result = try await connection.query("""
            SELECT w.topic, w.group_id, extract(epoch FROM w.seen_at)::float8 AS seen_at,
                   (SELECT extract(epoch FROM min(p.read_before))::float8 FROM outbox_consumer_progress p
                    WHERE p.group_id = w.group_id AND p.topic = w.topic) AS read_before,
                   extract(epoch FROM now())::float8 AS now
            FROM outbox_writeback_consumer w ORDER BY w.topic, w.group_id
            """)
        var now = Date().timeIntervalSince1970
        var registrations: [SweepScope.Registration] = []
        for row in result.rows {
            now = try row.double("now")
            // NULL: no partition recorded yet; -Infinity: one assigned but not read yet.
            let readBefore = try row.isNull("read_before") ? nil : try row.double("read_before")
            registrations.append(.init(topic: try row.string("topic"), group: try row.string("group_id"),
                                       seenAt: try row.double("seen_at"), readBefore: readBefore))
        }
        return (registrations, now)
    }

    /// Topics that have INIT rows, by a loose index scan of `outbox_init_topic_created_at`
    /// (one probe per topic, however many rows), with their INIT counts omitted on purpose:
    /// counting a large publish-only backlog would read all of it.
    public static func topicsWithInitRows(in table: OutboxTable = .default, on connection: PGConnection) async throws -> [String] {
        try await connection.query("""
            WITH RECURSIVE t(topic) AS (
                (SELECT topic FROM \(table.sql) WHERE status = 'INIT' ORDER BY topic LIMIT 1)
                UNION ALL
                SELECT (SELECT o.topic FROM \(table.sql) o WHERE o.status = 'INIT' AND o.topic > t.topic ORDER BY o.topic LIMIT 1)
                FROM t WHERE t.topic IS NOT NULL)
            SELECT topic FROM t WHERE topic IS NOT NULL
            """).rows.map { try $0.string("topic") }
    }
}
