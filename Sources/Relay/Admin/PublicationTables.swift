import PGOutput
import PostgresClient

/// Which outbox tables a publication carries, and adding one: what `migrate --schema` and
/// `migrate --shards` do to the relay's publications. Insert-only publications may filter
/// rows on any column, so a shard's row filter goes with every table it carries.
enum PublicationTables {
    /// Whether `publication` exists.
    static func exists(_ publication: String, on db: PGConnection) async throws -> Bool {
        try await db.query("SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1) AS present", [.text(publication)])
            .single().bool("present")
    }

    /// Adds `table` to `publication` (with `rowFilter`, an SQL boolean expression) unless it
    /// carries it already, also through FOR ALL TABLES or TABLES IN SCHEMA; true when added.
    @discardableResult
    static func add(_ table: OutboxTable, to publication: String, rowFilter: String? = nil, on db: PGConnection) async throws -> Bool {
        let carried = try await db.query("""
            SELECT EXISTS (SELECT FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3) AS carried
            """, [.text(publication), .text(table.schema), .text(table.name)]).single().bool("carried")
        guard !carried else { return false }
        try await db.query("ALTER PUBLICATION \(quoteIdentifier(publication)) ADD TABLE \(member(table, rowFilter: rowFilter))")
        return true
    }

    /// `table` as an item of CREATE/ALTER PUBLICATION's table list.
    static func member(_ table: OutboxTable, rowFilter: String?) -> String {
        table.sql + (rowFilter.map { " WHERE (\($0))" } ?? "")
    }
}
