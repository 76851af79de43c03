@testable import RelayCore
import Testing

@Suite("Shard layout: when migrate --shards N is a reshard")
struct ShardLayoutTests {
    @Test func freshOrSameLayoutNeedsNoReshard() {
        #expect(ShardLayout(publicationCounts: [], unshardedSlot: false, shardSlotIndexes: []).isCompatible(withCount: 3))
        #expect(ShardLayout(publicationCounts: [3], unshardedSlot: false, shardSlotIndexes: []).isCompatible(withCount: 3))
        #expect(ShardLayout(publicationCounts: [3], unshardedSlot: false, shardSlotIndexes: [0, 2]).isCompatible(withCount: 3))
    }

    @Test(arguments: [
        ShardLayout(publicationCounts: [], unshardedSlot: true, shardSlotIndexes: []),      // one unsharded slot
        ShardLayout(publicationCounts: [2], unshardedSlot: false, shardSlotIndexes: [0, 1]), // another count
        ShardLayout(publicationCounts: [2], unshardedSlot: false, shardSlotIndexes: []),     // another count, no slots yet
        ShardLayout(publicationCounts: [2, 3], unshardedSlot: false, shardSlotIndexes: []),  // an interrupted reshard
        ShardLayout(publicationCounts: [], unshardedSlot: false, shardSlotIndexes: [0]),     // slots left without publications
        ShardLayout(publicationCounts: [3], unshardedSlot: false, shardSlotIndexes: [3]),    // a slot beyond the count
        ShardLayout(publicationCounts: [3], unshardedSlot: true, shardSlotIndexes: [0]),     // shards plus an unsharded slot
    ])
    func otherLayoutsAreAReshard(layout: ShardLayout) {
        #expect(!layout.isCompatible(withCount: 3), "\(layout)")
    }
}
