import PGOutput
import PostgresClient

/// Reads and writes the slot's row in `outbox_relay_slot` (migration 0004): its identity
/// and the furthest LSN any relay may have confirmed to it. `execute` runs one simple
/// query on whichever connection the caller has (a replication connection before
/// START_REPLICATION answers plain SQL too).
struct SlotRecordStore: Sendable {
    let slot: String

    func read(_ execute: (String) throws -> PGResult) throws -> LSN? {
        do {
            return try execute("SELECT confirmed_lsn::text AS lsn FROM outbox_relay_slot WHERE slot_name = \(quoteLiteral(slot))")
                .rows.first?.lsn("lsn")
        } catch let error as PGError where error.sqlState == "42P01" {
            throw RelayError(.schemaOutdated,
                             "Table outbox_relay_slot is missing: the relay records its slot's identity there so that a lost slot is never silently recreated.",
                             fix: "run `outbox-relay migrate` as the owner of the outbox table, then grant the relay role SELECT, INSERT, UPDATE on it (sql/roles.sql).")
        }
    }

    /// `last_change` of a record whose first start is under way: written before the slot is
    /// created, replaced by `created` once the rows committed before the slot are published.
    static let creating = "creating"

    /// Whether the record says a first start began and never finished; nil: no record.
    func isCreating(_ execute: (String) throws -> PGResult) throws -> Bool? {
        try execute("SELECT last_change FROM outbox_relay_slot WHERE slot_name = \(quoteLiteral(slot))")
            .rows.first.map { try $0.string("last_change") == Self.creating }
    }

    /// Marks a first start under way, before the slot exists. False when a record exists.
    func beginCreating(_ execute: (String) throws -> PGResult) throws -> Bool {
        try execute("""
            INSERT INTO outbox_relay_slot (slot_name, created_lsn, confirmed_lsn, last_change)
            VALUES (\(quoteLiteral(slot)), '0/0', '0/0', \(quoteLiteral(Self.creating)))
            ON CONFLICT (slot_name) DO NOTHING
            """).affectedRows == 1
    }

    /// Ends a first start: the slot begins at `lsn` and its earlier rows are published.
    func finishCreating(at lsn: LSN, _ execute: (String) throws -> PGResult) throws {
        _ = try execute("""
            UPDATE outbox_relay_slot SET created_lsn = \(quoteLiteral(lsn.description)), confirmed_lsn = \(quoteLiteral(lsn.description)),
                   updated_at = now(), last_change = 'created'
            WHERE slot_name = \(quoteLiteral(slot)) AND last_change = \(quoteLiteral(Self.creating))
            """)
    }

    /// Records a slot that begins at `lsn`. `replace` overwrites an existing record (a
    /// reset); otherwise a record another relay wrote first wins.
    /// `clearsPending` needs migration 0008.
    func record(createdAt lsn: LSN, change: String, replace: Bool, clearsPending: Bool = false,
                _ execute: (String) throws -> PGResult) throws {
        let conflict = replace
            // The delivered snapshot stays true across a reset (what it sees was delivered);
            // the pending one was taken against the old slot's confirmations: dropped.
            ? "DO UPDATE SET created_lsn = EXCLUDED.created_lsn, confirmed_lsn = EXCLUDED.confirmed_lsn, updated_at = now(), last_change = EXCLUDED.last_change"
                + (clearsPending ? ", pending_snapshot = NULL, pending_lsn = NULL" : "")
            : "DO NOTHING"
        _ = try execute("""
            INSERT INTO outbox_relay_slot (slot_name, created_lsn, confirmed_lsn, last_change)
            VALUES (\(quoteLiteral(slot)), \(quoteLiteral(lsn.description)), \(quoteLiteral(lsn.description)), \(quoteLiteral(change)))
            ON CONFLICT (slot_name) \(conflict)
            """)
    }

    /// Raises the recorded LSN to `lsn` (never lowers it). Call it before confirming
    /// `lsn` to the slot, and confirm only after it returned.
    ///
    /// With `trackingDelivered` (migration 0008) the same write moves the delivered snapshot
    /// (`SlotDelivered`): the pending snapshot becomes the delivered one once the recorded
    /// LSN reaches the WAL position taken with it, and a new pending pair is taken. In one
    /// statement, so the pair is consistent: the statement's snapshot is taken before its
    /// expressions run, so every transaction it sees committed below the insert position.
    func advance(to lsn: LSN, trackingDelivered: Bool = false, _ execute: (String) throws -> PGResult) throws {
        let raised = "GREATEST(confirmed_lsn, \(quoteLiteral(lsn.description))::pg_lsn)"
        let delivered = !trackingDelivered ? "" : """
            , delivered_snapshot = CASE WHEN pending_lsn <= \(raised) THEN pending_snapshot ELSE delivered_snapshot END,
                   pending_snapshot = CASE WHEN pending_lsn IS NULL OR pending_lsn <= \(raised) THEN pg_current_snapshot() ELSE pending_snapshot END,
                   pending_lsn = CASE WHEN pending_lsn IS NULL OR pending_lsn <= \(raised) THEN pg_current_wal_insert_lsn() ELSE pending_lsn END
            """
        _ = try execute("""
            UPDATE outbox_relay_slot SET confirmed_lsn = \(raised), updated_at = now(), last_change = 'confirmed'\(delivered)
            WHERE slot_name = \(quoteLiteral(slot))
            """)
    }

    /// The snapshot whose every transaction was delivered (migration 0008), as text; nil
    /// when none is known (no record, a record older than the migration, or one not yet
    /// confirmed past its first pending snapshot).
    func deliveredSnapshot(_ execute: (String) throws -> PGResult) throws -> String? {
        do {
            return try execute("SELECT delivered_snapshot::text AS s FROM outbox_relay_slot WHERE slot_name = \(quoteLiteral(slot))")
                .rows.first?.optionalString("s")
        } catch let error as PGError where error.sqlState == SlotDelivered.undefinedColumn {
            return nil
        }
    }
}
