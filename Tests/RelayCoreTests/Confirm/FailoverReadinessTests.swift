import RelayCore
import Testing

/// Issue 32, item 2: the relay tells whether its slot survives a primary failover. Only a
/// failover slot on 17+ whose every standby is named in `synchronized_standby_slots` is
/// ready; the rest say why.
@Suite("Failover readiness")
struct FailoverReadinessTests {
    static let table: [(major: Int, failover: Bool, setting: String, physical: [String], expected: FailoverReadiness)] = [
        (15, false, "", ["standby1"], .unsupported(serverMajor: 15)),
        (16, true, "standby1", ["standby1"], .unsupported(serverMajor: 16)),
        (17, false, "standby1", ["standby1"], .slotWithoutFailover),
        (18, true, "", [], .noStandby),                                            // standalone
        (18, true, "standby1", [], .noStandby),
        (18, true, "", ["standby1"], .unprotected(standbySlots: ["standby1"])),      // the default setting
        (18, true, "other", ["standby1"], .unprotected(standbySlots: ["standby1"])),
        (18, true, "standby1", ["standby1"], .ready(standbySlots: ["standby1"])),
        (17, true, "b, a", ["a", "b"], .ready(standbySlots: ["a", "b"])),
        (18, true, "a", ["b", "a", "c"], .unprotected(standbySlots: ["b", "c"])),  // a second standby left out
        (18, true, "\"Standby\" , b", ["Standby", "b"], .ready(standbySlots: ["Standby", "b"])),  // quoted names as SHOW prints them
    ]

    @Test("assessments", arguments: 0..<table.count)
    func assess(_ index: Int) {
        let row = Self.table[index]
        let readiness = FailoverReadiness.assess(serverMajor: row.major, slotFailover: row.failover,
                                                 synchronizedStandbySlots: row.setting, physicalSlots: row.physical)
        #expect(readiness == row.expected)
        #expect(readiness.isReady == { if case .ready = row.expected { true } else { false } }())
    }

    @Test("warn only when a failover is possible but unsafe")
    func warnings() {
        #expect(FailoverReadiness.slotWithoutFailover.deservesWarning)
        #expect(FailoverReadiness.unprotected(standbySlots: ["s"]).deservesWarning)
        #expect(!FailoverReadiness.noStandby.deservesWarning)
        #expect(!FailoverReadiness.unsupported(serverMajor: 15).deservesWarning)
        #expect(!FailoverReadiness.ready(standbySlots: ["s"]).deservesWarning)
    }
}
