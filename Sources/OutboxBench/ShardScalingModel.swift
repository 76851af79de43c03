import Foundation

/// What N shards could drain with an idle core per walsender, from the walsenders' CPU
/// measured in the same run.
///
/// Every walsender decodes all the WAL and ships only its own shard's rows, so a walsender
/// of N shards spends c(N) = d + s/N CPU per WAL row: d for decoding and the row filter,
/// paid by every walsender for every row, and s for shipping a row, paid once. A
/// least-squares fit of c against 1/N over the measured shard counts gives d and s. With
/// a core per walsender and the relays and broker elsewhere, N shards drain 1/c(N) rows/s,
/// and no number of shards drains faster than 1/d.
struct ShardScalingModel: Equatable {
    /// d, µs of walsender CPU per WAL row, whatever the shard count.
    var decodeMicros: Double
    /// s, µs of walsender CPU per shipped row.
    var shipMicros: Double

    /// - Parameter perWalsenderMicros: by shard count, one walsender's CPU per WAL row (µs).
    /// Nil without two distinct shard counts, or when the fit leaves no decode cost (noise).
    init?(perWalsenderMicros: [Int: Double]) {
        let points = perWalsenderMicros.filter { $0.key >= 1 && $0.value > 0 }.map { (x: 1 / Double($0.key), y: $0.value) }
        guard points.count >= 2 else { return nil }
        let meanX = points.map(\.x).reduce(0, +) / Double(points.count)
        let meanY = points.map(\.y).reduce(0, +) / Double(points.count)
        let variance = points.map { ($0.x - meanX) * ($0.x - meanX) }.reduce(0, +)
        let covariance = points.map { ($0.x - meanX) * ($0.y - meanY) }.reduce(0, +)
        // A negative slope would mean shipping fewer rows costs more: noise, read as free.
        let ship = max(0, covariance / variance)
        let decode = meanY - ship * meanX
        guard decode > 0 else { return nil }
        decodeMicros = decode
        shipMicros = ship
    }

    init(decodeMicros: Double, shipMicros: Double) {
        self.decodeMicros = decodeMicros
        self.shipMicros = shipMicros
    }

    /// Rows/s N shards drain when each walsender has a core of its own.
    func rowsPerSecond(shards: Int) -> Double {
        1e6 / (decodeMicros + shipMicros / Double(max(1, shards)))
    }

    /// The line the results print.
    func text(measured: [Int: Double]) -> String {
        let points = measured.sorted { $0.key < $1.key }
            .map { String(format: "%.2f µs (%d shard%@)", $0.value, $0.key, $0.key == 1 ? "" : "s") }.joined(separator: ", ")
        let one = rowsPerSecond(shards: 1)
        let scaling = [2, 4, 8].map { String(format: "%d shards %.2f×", $0, rowsPerSecond(shards: $0) / one) }.joined(separator: ", ")
        return String(format: "walsender CPU per WAL row %@ → d = %.2f µs (decoding and the row filter, every walsender, every row), "
                      + "s = %.2f µs (shipping, once per row). With an idle core per walsender and the relays and broker elsewhere: "
                      + "1 shard %.0fk rows/s, %@, never above %.2f×.",
                      points, decodeMicros, shipMicros, one / 1000, scaling, (1e6 / decodeMicros) / one)
    }
}
