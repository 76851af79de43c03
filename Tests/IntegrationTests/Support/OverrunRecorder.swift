import Synchronization
import Testing

/// Records the reports of a stop watchdog (`onStopOverrun`) for the tests that hang a stop
/// on purpose, relay and consumer alike.
final class OverrunRecorder: Sendable {
    private let times = Mutex<[ContinuousClock.Instant]>([])

    /// Pass as `onStopOverrun`.
    var report: @Sendable () -> Void { { [self] in times.withLock { $0.append(.now) } } }
    var count: Int { times.withLock { $0.count } }

    /// The whole check, for a stop held by something `thaw` undoes: `stop`, expect one
    /// report on time, `thaw`, wait for `finished`, and expect no second report.
    func expectStopEndedByWatchdog(drainTimeout: Duration, stop: () -> Void, thaw: () -> Void,
                                   finished: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let stopped = ContinuousClock.now
        stop()
        await expectFirstOnTime(after: stopped, drainTimeout: drainTimeout, sourceLocation: sourceLocation)
        thaw()
        try await finished()
        #expect(count == 1, "the watchdog reported \(count) times", sourceLocation: sourceLocation)
    }

    /// Waits up to 10 s for the first report and expects it at `drainTimeout` after
    /// `stopped`: not before, and less than half a second late.
    func expectFirstOnTime(after stopped: ContinuousClock.Instant, drainTimeout: Duration,
                           sourceLocation: SourceLocation = #_sourceLocation) async {
        let fired = await eventually(timeout: .seconds(10)) { count > 0 }
        #expect(fired, "no overrun reported 10 s after a stop with a \(drainTimeout) drain-timeout", sourceLocation: sourceLocation)
        guard let at = times.withLock({ $0.first }) else { return }
        #expect(at - stopped >= drainTimeout - .milliseconds(50) && at - stopped < drainTimeout + .milliseconds(500),
                "fired after \(at - stopped)", sourceLocation: sourceLocation)
    }
}
