import Foundation
import Histogram
import Synchronization

/// Median, min and max of repeated runs: this machine is noisy, so every figure is the
/// median of several runs and ratios are computed against baselines from the same run.
struct Sample: Codable {
    var median: Double
    var min: Double
    var max: Double
    var runs: [Double]

    init(_ runs: [Double]) {
        let sorted = runs.sorted()
        self.runs = runs
        median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        min = sorted.first ?? 0
        max = sorted.last ?? 0
    }

    func text(_ format: String = "%.0f") -> String {
        "\(String(format: format, median)) (\(String(format: format, min))–\(String(format: format, max)))"
    }
}

/// Percentiles of a latency sample, in milliseconds, from an HdrHistogram (1 µs to 1 h,
/// three significant digits: every percentile within 0.1% of the exact one).
///
/// No synthetic samples are added for coordinated omission, because the load is open-loop
/// (`RateLoad`): writers never wait for the relay, so a relay stall delays the rows it
/// catches and each is recorded with its full wait. The omission this bench had was on the
/// writers' side, a writer behind schedule skipped the transactions it missed, and
/// `RateLoad` now keeps its schedule instead.
struct Percentiles: Codable {
    var p50: Double, p99: Double, p999: Double, count: Int

    init(_ nanos: [Int64]) {
        var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
        for value in nanos { _ = histogram.record(UInt64(min(max(value, 1_000), 3_600_000_000_000))) }
        func at(_ percentile: Double) -> Double {
            nanos.isEmpty ? .nan : Double(histogram.valueAtPercentile(percentile)) / 1e6
        }
        p50 = at(50); p99 = at(99); p999 = at(99.9); count = nanos.count
    }
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

func log(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

/// A lock-protected value that can be shared by reference.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) throws -> T) rethrows -> T {
        try mutex.withLock { try body(&$0) }
    }
}
