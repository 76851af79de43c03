public import PGOutput

/// Decides, at every session start, whether the slot is the one the relays have been
/// reading (docs/architecture.md, invariant 8). Pure: the shell reads the slot from
/// `pg_replication_slots` and the record from `outbox_relay_slot`.
///
/// Relays write the record's LSN before they confirm it to the slot, so under legitimate
/// operation (this relay, a peer after a takeover, a PostgreSQL crash that moved the slot
/// back) the slot is never ahead of its record. Only the very first start creates a slot.
public enum SlotIdentityCheck {
    public enum Decision: Sendable, Equatable {
        /// Neither slot nor record: the very first start. Create both.
        case create
        /// A slot with no record (created by hand, or by a version without the record):
        /// adopt it, recording its position.
        case adopt(LSN)
        /// The slot is the recorded one: read from its confirmed position.
        case proceed(LSN)
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
    /// `recorded` is the record's confirmed_lsn, nil when there is no record.
    public static func decide(slot: LSN?, recorded: LSN?, createIfMissing: Bool) -> Decision {
        switch (slot, recorded) {
        case (nil, nil): return createIfMissing ? .create : .refuse(.missingNeverCreated)
        case (let slot?, nil): return .adopt(slot)
        case (nil, let recorded?): return .refuse(.lost(recorded: recorded))
        case (let slot?, let recorded?):
            return slot > recorded ? .refuse(.movedAhead(slot: slot, recorded: recorded)) : .proceed(slot)
        }
    }
}
