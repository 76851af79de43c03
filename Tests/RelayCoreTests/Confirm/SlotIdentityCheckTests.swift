import PGOutput
import RelayCore
import Testing

/// Issue 13, items 3 and 4: a lost or moved slot is never silently accepted, and a peer's
/// legitimate progress (the slot behind or at its record) never halts a relay.
@Suite("Slot identity check")
struct SlotIdentityCheckTests {
    static let table: [(slot: UInt64?, recorded: UInt64?, create: Bool, expected: SlotIdentityCheck.Decision)] = [
        (nil, nil, true, .create),                                           // the very first start
        (nil, nil, false, .refuse(.missingNeverCreated)),
        (500, nil, true, .adopt(LSN(500))),                                  // created by hand, or before the record existed
        (nil, 400, true, .refuse(.lost(recorded: LSN(400)))),               // dropped while the relays were down: never recreated
        (nil, 400, false, .refuse(.lost(recorded: LSN(400)))),
        (400, 400, true, .proceed(LSN(400))),
        (300, 400, true, .proceed(LSN(300))),                                // PostgreSQL crash: the slot moved back; re-read
        (400, 900, true, .proceed(LSN(400))),                                // a peer recorded ahead and confirmed less: takeover
        (901, 900, true, .refuse(.movedAhead(slot: LSN(901), recorded: LSN(900)))),  // advanced or recreated by someone
    ]

    @Test("decisions", arguments: 0..<table.count)
    func decide(_ index: Int) {
        let row = Self.table[index]
        #expect(SlotIdentityCheck.decide(slot: row.slot.map { LSN($0) }, recorded: row.recorded.map { LSN($0) }, createIfMissing: row.create) == row.expected)
    }
}
