/// What `migrate --shards N` finds, and whether reaching N shards is a reshard. Pure: the
/// shell reads the shard publications' counts and the layout's slots from PostgreSQL.
public struct ShardLayout: Sendable, Equatable {
    /// Shard counts of the existing shard publications (`<publication>_I_of_N`).
    public var publicationCounts: Set<Int>
    /// The unsharded slot (`<slot>`) exists.
    public var unshardedSlot: Bool
    /// Indexes of the existing shard slots (`<slot>_I`).
    public var shardSlotIndexes: [Int]

    public init(publicationCounts: Set<Int>, unshardedSlot: Bool, shardSlotIndexes: [Int]) {
        self.publicationCounts = publicationCounts
        self.unshardedSlot = unshardedSlot
        self.shardSlotIndexes = shardSlotIndexes
    }

    /// True when `count` shards need no reshard: the database already has exactly that
    /// layout, or none at all. Anything else (one unsharded slot, another count, shard slots
    /// left without their publications, a slot beyond the count) means existing slots whose
    /// positions belong to other row filters: they must be dropped, never adopted.
    public func isCompatible(withCount count: Int) -> Bool {
        guard !unshardedSlot, shardSlotIndexes.allSatisfy({ $0 < count }) else { return false }
        return publicationCounts == [count] || (publicationCounts.isEmpty && shardSlotIndexes.isEmpty)
    }
}
