import PostgresClient

/// What the slot record knows was delivered, as a snapshot (migration 0008), and the rows
/// `slot reset` re-sends because of it: after a failover on PostgreSQL 15/16 the new
/// primary has no slot, and only rows that may be missing from Kafka go out again.
///
/// Why a snapshot: the outbox does not store a row's commit LSN, but the record can hold a
/// snapshot whose every transaction committed below its `confirmed_lsn`, so Kafka has
/// acknowledged all of them (`SlotRecordStore.advance(trackingDelivered:)`). A row whose
/// inserting transaction (`xmin`) that snapshot does not see may be missing. Errors go one
/// way only: a row classed "may be missing" that was delivered is a duplicate; nothing
/// delivered-looking can be missing:
/// - The record a promoted standby holds was replicated to it, so it saw the transaction
///   that wrote the snapshot, and every transaction the snapshot sees committed before
///   that. Transaction ids the new primary hands out come after, so the snapshot never sees
///   them (it is never fooled by an id reused after a failover).
/// - A row updated since (the sweeper's attempts, a re-drive) has the updater's `xmin`,
///   which looks newer: sent again, never skipped.
enum SlotDelivered {
    /// `undefined_column`: a database without migration 0008.
    static let undefinedColumn = "42703"

    /// A predicate on `outbox`, true for a row that may be missing from Kafka: its `xmin`
    /// is not visible in `snapshot` (`pg_snapshot` text, e.g. `100:104:102`).
    ///
    /// `xmin` is a 32-bit id and `pg_visible_in_snapshot` takes a 64-bit one. It is widened
    /// against the current snapshot's `xmax`, which every row the query sees lies below: the
    /// nearest id at or below it with the same low 32 bits. The literal is quoted.
    static func mayBeMissingPredicate(snapshot: String) -> String {
        "NOT pg_visible_in_snapshot(\(widenedXmin()), \(quoteLiteral(snapshot))::pg_snapshot)"
    }

    /// The current snapshot's `xmax` as a 64-bit number (epoch and id).
    static let currentReference = "pg_snapshot_xmax(pg_current_snapshot())::text::bigint"

    /// `xmin` as an `xid8`: the nearest id at or below `reference` (a bigint expression)
    /// with the same low 32 bits, so an id of the epoch before `reference`'s keeps its epoch.
    static func widenedXmin(reference: String = currentReference) -> String {
        "(\(reference) - (((\(reference) & 4294967295) - xmin::text::bigint + 4294967296) % 4294967296))::text::xid8"
    }
}
