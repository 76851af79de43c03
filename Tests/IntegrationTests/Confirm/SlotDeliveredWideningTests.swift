import PostgresClient
@testable import Relay
import Testing

/// `SlotDelivered` widens a row's 32-bit `xmin` to the 64-bit id `pg_visible_in_snapshot`
/// takes, against the current snapshot's `xmax`. A server past its first wraparound (epoch
/// 1 and on) has rows of the epoch before: widened wrongly, such a row would look newer or
/// older than it is, and `slot reset` would skip a row that may be missing. The arithmetic
/// runs in PostgreSQL, so it is checked there, with the reference across epoch boundaries.
@Suite("Slot record: xmin widened across transaction-id epochs")
struct SlotDeliveredWideningTests {
    static let epoch: Int64 = 1 << 32

    @Test("an xmin is widened to the nearest id at or below the reference with its low 32 bits, in the reference's epoch or the one before",
          arguments: [
            // (reference, xmin, widened)
            (Int64(1_000), Int64(900), Int64(900)),                       // epoch 0, below
            (Int64(1_000), Int64(1_000), Int64(1_000)),                   // at the reference
            (epoch + 5, Int64(3), epoch + 3),                             // epoch 1, same epoch
            (epoch + 5, Int64(4_294_967_290), Int64(4_294_967_290)),      // epoch 1, a row of epoch 0
            (3 * epoch + 100, Int64(4_294_967_295), 3 * epoch - 1),       // the last id of the epoch before
            (3 * epoch + 100, Int64(100), 3 * epoch + 100),
            (3 * epoch + 100, Int64(101), 2 * epoch + 101),               // just above the reference's low bits
          ])
    func widening(_ reference: Int64, _ xmin: Int64, _ widened: Int64) async throws {
        try await withTestContext(broker: false) { ctx in
            let db = try await ctx.connect()
            let expression = SlotDelivered.widenedXmin(reference: "\(reference)::bigint")
            let row = try await db.query("SELECT (\(expression))::text AS widened FROM (VALUES ($1::text::xid)) AS v(xmin)",
                                         [.text(String(xmin))]).single()
            #expect(try row.string("widened") == String(widened))
        }
    }

    @Test("a snapshot of epoch 1 sees a widened row of epoch 0 that committed before it, and not one of its own epoch after its xmax")
    func visibilityAcrossEpochs() async throws {
        try await withTestContext(broker: false) { ctx in
            let db = try await ctx.connect()
            // Snapshot of epoch 1: xmin = xmax = 2^32 + 10, nothing in progress.
            let snapshot = "\(Self.epoch + 10):\(Self.epoch + 10):"
            let visible = """
                SELECT pg_visible_in_snapshot(\(SlotDelivered.widenedXmin(reference: "\(Self.epoch + 20)::bigint")), $2::pg_snapshot) AS seen
                FROM (VALUES ($1::text::xid)) AS v(xmin)
                """
            // 4294967290 is of epoch 0 (below the reference's low bits' wrap): committed before.
            #expect(try await db.query(visible, [.text("4294967290"), .text(snapshot)]).single().bool("seen"))
            #expect(try await db.query(visible, [.text("5"), .text(snapshot)]).single().bool("seen"))
            #expect(try await !db.query(visible, [.text("15"), .text(snapshot)]).single().bool("seen"), "epoch 1, at or past xmax")
        }
    }
}
