import RelayCore
import Testing

/// Issue 32, item 4: a slot lost in a failover is not reported as "dropped by someone".
@Suite("Lost slot cause")
struct LostSlotCauseTests {
    static let table: [(timeline: UInt32, major: Int, expected: LostSlotCause)] = [
        (1, 15, .dropped),                                                  // never promoted: someone dropped it
        (1, 18, .dropped),
        (2, 15, .promotedOrRestored(timeline: 2, failoverSlots: false)),    // 15/16: no slot survives a promotion
        (2, 16, .promotedOrRestored(timeline: 2, failoverSlots: false)),
        (3, 17, .promotedOrRestored(timeline: 3, failoverSlots: true)),     // 17+: it was not a synced failover slot
    ]

    @Test("causes", arguments: 0..<table.count)
    func cause(_ index: Int) {
        let row = Self.table[index]
        #expect(LostSlotCause.assess(timeline: row.timeline, serverMajor: row.major) == row.expected)
    }
}
