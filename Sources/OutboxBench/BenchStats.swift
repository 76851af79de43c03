import Foundation
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

/// Percentiles of a latency sample, in milliseconds.
struct Percentiles: Codable {
    var p50: Double, p99: Double, p999: Double, count: Int

    init(_ nanos: [Int64]) {
        let sorted = nanos.sorted()
        func at(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return .nan }
            return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1e6
        }
        p50 = at(0.50); p99 = at(0.99); p999 = at(0.999); count = sorted.count
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
