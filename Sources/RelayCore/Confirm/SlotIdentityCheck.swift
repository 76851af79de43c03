public import PGOutput

/// Decides, at every session start, whether the slot is the one the relays have been
/// reading (docs/architecture.md, invariant 8). Pure: the shell reads the slot from
/// `pg_replication_slots` and the record from `outbox_relay_slot`.
///
/// Relays write the record's LSN before they confirm it to the slot, so under legitimate
/// operation (this relay, a peer after a takeover, a PostgreSQL crash that moved the slot
/// back) the slot is never ahead of its record. Only the very first start creates a slot.
///
/// One exception, a primary failover on PostgreSQL 17+: the new primary's slot was synced
/// from the old primary's (`synced`), and its record came by WAL replay. The slot sync only
/// waits for the standby to have the WAL up to the slot's position, not up to the later
/// record write, so the synced slot may be ahead of the replayed record. Its position is
/// still one a relay confirmed after recording it on the old primary: follow it. A slot
/// ahead that was not synced is still refused.
public enum SlotIdentityCheck {
    public enum Decision: Sendable, Equatable {
        /// Neither slot nor record: the very first start. Create both.
        case create
        /// A slot with no record (created by hand, or by a version without the record):
        /// adopt it, recording its position.
        case adopt(LSN)
        /// The slot is the recorded one: read from its confirmed position.
        case proceed(LSN)
        /// A slot synced from a former primary is ahead of the record, whose last write had
        /// not reached this server before it was promoted: raise the record to it and read.
        case followSynced(LSN)
        /// Refuse to start: the slot is gone, or was moved past what any relay confirmed.
        case refuse(Problem)
    }

    public enum Problem: Sendable, Equatable {
        /// No slot and no record, and creating slots is off.
        case missingNeverCreated
        /// The record exists but the slot does not: it was dropped.
        case lost(recorded: LSN)
        /// The slot is confirmed past its record: advanced or recreated by someone else.
        case movedAhead(slot: LSN, recorded: LSN)
    }

    /// `slot` is the slot's confirmed_flush_lsn, nil when the slot does not exist;
    /// `synced` says it was synced from a former primary (`pg_replication_slots.synced` on
    /// a server that is no longer a standby; always false before 17); `recorded` is the
    /// record's confirmed_lsn, nil when there is no record.
    public static func decide(slot: LSN?, synced: Bool, recorded: LSN?, createIfMissing: Bool) -> Decision {
        switch (slot, recorded) {
        case (nil, nil): return createIfMissing ? .create : .refuse(.missingNeverCreated)
        case (let slot?, nil): return .adopt(slot)
        case (nil, let recorded?): return .refuse(.lost(recorded: recorded))
        case (let slot?, let recorded?):
            guard slot > recorded else { return .proceed(slot) }
            return synced ? .followSynced(slot) : .refuse(.movedAhead(slot: slot, recorded: recorded))
        }
    }
}
