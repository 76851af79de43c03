import RelayCore
import Testing

@Suite("Record wait limit")
struct RecordWaitTests {
    static let start = ContinuousClock.now
    static let wait = RecordWait(started: start, longest: .seconds(5), teardownReserve: .milliseconds(400))

    @Test("without a stop the wait runs its full length")
    func noStop() {
        #expect(Self.wait.deadline(stopDeadline: nil) == Self.start + .seconds(5))
    }

    /// (stop deadline after the start, expected deadline after the start): a stop cuts the
    /// wait at half the teardown reserve past its deadline, never lengthens it, and one
    /// already past gives a deadline in the past (the wait returns at once).
    static let table: [(Duration, Duration)] = [
        (.seconds(1), .milliseconds(1_200)),
        (.milliseconds(4_800), .seconds(5)),
        (.seconds(10), .seconds(5)),
        (.zero, .milliseconds(200)),
        (.seconds(-1), .milliseconds(-800)),
    ]

    @Test("a stop cuts the wait short", arguments: table)
    func stopCuts(stopAfter: Duration, expected: Duration) {
        #expect(Self.wait.deadline(stopDeadline: Self.start + stopAfter) == Self.start + expected)
    }
}
