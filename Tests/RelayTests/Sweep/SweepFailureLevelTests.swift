import Logging
import PGOutput
@testable import Relay
import RelayCore
import Testing

/// A PostgreSQL restart failed the sweeper's next round (its idle connection was gone) and
/// logged an error on every restart. One failed round is routine; two in a row are the error.
@Suite("Sweep failure levels")
struct SweepFailureLevelTests {
    @Test("failed rounds in a row: the first is a warning, the second the one error, later ones warnings",
          arguments: [(1, Logger.Level.warning), (2, .error), (3, .warning), (20, .warning)])
    func levels(failures: Int, expected: Logger.Level) {
        #expect(Sweeper.failureLevel(inARow: failures) == expected)
    }

    @Test("only steps that query the database show that the connection works again")
    func stepsThatUseTheDatabase() {
        let steps: [(SweepSchedule.Step, Bool)] = [(.idle, false), (.waitForStream(LSN(1)), false), (.takeSnapshot, true),
                                                   (.deleteExpired([1]), true), (.resendDue, true)]
        for (step, uses) in steps { #expect(step.usesDatabase == uses, "\(step)") }
    }
}
