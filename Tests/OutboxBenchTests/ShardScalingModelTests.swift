@testable import OutboxBench
import Testing

@Suite("shard scaling model: walsender CPU per WAL row = d + s/N")
struct ShardScalingModelTests {
    @Test("costs that follow d + s/N exactly give back d and s, and the drain each shard count reaches")
    func exactCostsRecoverDecodeAndShip() throws {
        // d = 3.6 µs decoding (every walsender), s = 1.65 µs shipping (once per row).
        let model = try #require(ShardScalingModel(perWalsenderMicros: [1: 5.25, 2: 4.425, 4: 4.0125]))
        #expect(abs(model.decodeMicros - 3.6) < 1e-9)
        #expect(abs(model.shipMicros - 1.65) < 1e-9)
        #expect(abs(model.rowsPerSecond(shards: 1) - 1e6 / 5.25) < 1e-6)
        #expect(abs(model.rowsPerSecond(shards: 2) / model.rowsPerSecond(shards: 1) - 5.25 / 4.425) < 1e-9)
        let text = model.text(measured: [1: 5.25, 2: 4.425])
        #expect(text.contains("d = 3.60 µs") && text.contains("s = 1.65 µs"), "\(text)")
        #expect(text.contains("2 shards 1.19×") && text.contains("never above 1.46×"), "\(text)")
    }

    @Test("noisy points are fitted by least squares, not through the first two")
    func leastSquares() throws {
        // Against x = 1/N = 1, 1/2, 1/4: slope 73/35, intercept 177/60 (worked by hand);
        // a line through the first two points alone would give s = 2.6, d = 2.5.
        let model = try #require(ShardScalingModel(perWalsenderMicros: [1: 5.1, 2: 3.8, 4: 3.6]))
        #expect(abs(model.shipMicros - 73.0 / 35.0) < 1e-9)
        #expect(abs(model.decodeMicros - 177.0 / 60.0) < 1e-9)
    }

    @Test("a shard count whose walsenders cost more per row than one walsender reads as no shipping share: no gain from shards")
    func negativeSlopeMeansNoGain() throws {
        let model = try #require(ShardScalingModel(perWalsenderMicros: [1: 4.0, 2: 4.4]))
        #expect(model.shipMicros == 0)
        #expect(model.rowsPerSecond(shards: 8) == model.rowsPerSecond(shards: 1))
    }

    @Test("one shard count alone, or a fit without a decode cost, gives no model")
    func notEnoughToFit() {
        #expect(ShardScalingModel(perWalsenderMicros: [1: 5.0]) == nil)
        #expect(ShardScalingModel(perWalsenderMicros: [:]) == nil)
        #expect(ShardScalingModel(perWalsenderMicros: [1: 5.0, 2: 2.0]) == nil, "d = -1 µs is noise, not a model")
    }
}
