public import PGOutput

/// The outbox's shape as SQL, for a table in a schema of its own (`outbox-table.sql`,
/// embedded): what `outbox-relay migrate --schema S [--table T]` runs. The file is the one
/// place the shape is written outside the migrations; a test keeps the two equal.
public enum OutboxTableTemplate {
    /// The template with `table`'s names bound. Safe to splice: `OutboxTable` admits only
    /// `[a-z_][a-z0-9_$]*`, which cannot end the quoted identifiers they land in.
    public static func sql(for table: OutboxTable) -> String {
        String(decoding: PackageResources.outbox_table_sql, as: UTF8.self)
            .replacingOccurrences(of: "{schema}", with: table.schema)
            .replacingOccurrences(of: "{table}", with: table.name)
    }
}
