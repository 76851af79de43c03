import PGOutput
import RelayCore
import Testing

/// Issue 13, items 3 and 4: a lost or moved slot is never silently accepted, and a peer's
/// legitimate progress (the slot behind or at its record) never halts a relay. Issue 32,
/// item 2: after a failover on 17+ a synced slot is followed, even ahead of its record; a
/// missing, or unsynced and ahead, slot is still refused.
@Suite("Slot identity check")
struct SlotIdentityCheckTests {
    static let table: [(slot: UInt64?, synced: Bool, recorded: UInt64?, create: Bool, expected: SlotIdentityCheck.Decision)] = [
        (nil, false, nil, true, .create),                                           // the very first start
        (nil, false, nil, false, .refuse(.missingNeverCreated)),
        (500, false, nil, true, .adopt(LSN(500))),                                  // created by hand, or before the record existed
        (500, true, nil, true, .adopt(LSN(500))),                                   // synced, with no record (it predates the record)
        (nil, false, 400, true, .refuse(.lost(recorded: LSN(400)))),               // dropped while the relays were down: never recreated
        (nil, false, 400, false, .refuse(.lost(recorded: LSN(400)))),
        (400, false, 400, true, .proceed(LSN(400))),
        (300, false, 400, true, .proceed(LSN(300))),                                // PostgreSQL crash: the slot moved back; re-read
        (400, false, 900, true, .proceed(LSN(400))),                                // a peer recorded ahead and confirmed less: takeover
        (901, false, 900, true, .refuse(.movedAhead(slot: LSN(901), recorded: LSN(900)))),  // advanced or recreated by someone
        // Failover on 17+: the promoted standby's slot was synced from the old primary.
        (400, true, 400, true, .proceed(LSN(400))),
        (300, true, 400, true, .proceed(LSN(300))),                                 // synced a while before the primary died: re-read
        (901, true, 900, true, .followSynced(LSN(901))),                            // the record's last write did not reach the standby
        (901, true, 900, false, .followSynced(LSN(901))),
    ]

    @Test("decisions", arguments: 0..<table.count)
    func decide(_ index: Int) {
        let row = Self.table[index]
        #expect(SlotIdentityCheck.decide(slot: row.slot.map { LSN($0) }, synced: row.synced, recorded: row.recorded.map { LSN($0) },
                                         createIfMissing: row.create) == row.expected)
    }
}
