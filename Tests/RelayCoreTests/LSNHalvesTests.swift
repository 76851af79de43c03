import PGOutput
import RelayCore
import Testing

/// The confirmed LSN is exported as two gauges because Prometheus samples are float64:
/// one gauge holding the whole LSN rounds every value above 2^53.
@Suite("LSN halves for metrics")
struct LSNHalvesTests {
    static let samples: [UInt64] = [
        0, 1, 0xFFFF_FFFF, 0x1_0000_0000, 0x16_B374_8,
        1 << 53, (1 << 53) + 1, 0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE, UInt64.max,
    ]

    @Test("each half is exact as a float64, and the halves rebuild the LSN", arguments: samples)
    func exactRoundTrip(_ raw: UInt64) {
        let lsn = LSN(raw)
        // What the gauges carry: the halves through Double, as the Prometheus backend stores them.
        let high = Double(Int64(lsn.high)), low = Double(Int64(lsn.low))
        #expect(UInt32(exactly: high) == lsn.high && UInt32(exactly: low) == lsn.low)
        #expect(LSN(high: UInt32(high), low: UInt32(low)) == lsn)
        // The halves are what PostgreSQL prints, `high/low` in hex.
        #expect(String(lsn.high, radix: 16, uppercase: true) + "/" + String(lsn.low, radix: 16, uppercase: true) == lsn.description)
    }

    @Test("a single float64 gauge (the old exposition) loses LSNs above 2^53; the halves do not")
    func singleGaugeLosesPrecision() {
        let lsns = [LSN((1 << 53) + 1), LSN(UInt64.max - 2)]
        for lsn in lsns {
            let single = Double(lsn.rawValue)
            #expect(UInt64(exactly: single) != lsn.rawValue, "\(lsn) survived a float64: the test no longer shows the defect")
            #expect(LSN(high: UInt32(Double(lsn.high)), low: UInt32(Double(lsn.low))) == lsn)
        }
    }
}
