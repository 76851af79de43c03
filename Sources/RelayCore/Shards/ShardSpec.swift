/// One shard of a sharded capture: shard `index` of `count` (`--shard I/N`). Rows are split
/// between shards by a stable hash of `mq_key` computed by PostgreSQL itself (the
/// publication's row filter), so every row of one key lives in exactly one shard and
/// per-key order needs nothing across shards. The hash stays in SQL only: the relay never
/// computes it, so it can never disagree with the server.
public struct ShardSpec: Sendable, Hashable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    /// Each shard holds a replication slot and a walsender; PostgreSQL's defaults
    /// (`max_replication_slots`, `max_wal_senders` = 10) bound real deployments far below this.
    public static let maximumCount = 64

    public init(index: Int, count: Int) throws(ShardSpecError) {
        guard count >= 1, count <= Self.maximumCount else { throw .badCount("\(count)") }
        guard index >= 0, index < count else { throw .indexOutOfRange(index: index, count: count) }
        self.index = index
        self.count = count
    }

    /// Parses `I/N` (`0/3`, `2/3`).
    public static func parse(_ text: String) throws(ShardSpecError) -> ShardSpec {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .notIOverN(text) }
        guard let index = Self.number(parts[0]), let count = Self.number(parts[1]) else { throw .notIOverN(text) }
        return try ShardSpec(index: index, count: count)
    }

    /// Parses the shard count of `--shards N`.
    public static func parseCount(_ text: String) throws(ShardSpecError) -> Int {
        guard let count = number(Substring(text)), count >= 1, count <= maximumCount else { throw .badCount(text) }
        return count
    }

    /// Plain decimal digits only: `+1`, ` 1` or `0x1` are typos, not shard numbers.
    private static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 4, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int(text)
    }

    public var description: String { "\(index)/\(count)" }

    /// Every shard of a layout of `count` shards.
    public static func all(count: Int) -> [ShardSpec] {
        (0..<count).map { try! ShardSpec(index: $0, count: count) }
    }

    // MARK: names

    /// The shard's replication slot: `<base>_<index>` (`outbox_relay_0`).
    public func slotName(base: String) -> String { "\(base)_\(index)" }

    /// The shard's publication: `<base>_<index>_of_<count>` (`outbox_pub_0_of_3`). The count
    /// is part of the name so that a relay started with a stale `--shard I/N` after a
    /// reshard finds no publication and stops, instead of reading the wrong rows.
    public func publicationName(base: String) -> String { "\(base)_\(index)_of_\(count)" }

    /// The shard a publication name belongs to, for `base`; nil when it is not one.
    public static func fromPublicationName(_ name: String, base: String) -> ShardSpec? {
        guard name.hasPrefix(base + "_") else { return nil }
        let parts = name.dropFirst(base.count + 1).split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1] == "of", let index = number(parts[0]), let count = number(parts[2]) else { return nil }
        return try? ShardSpec(index: index, count: count)
    }

    /// The shard index a slot name carries for `base` (`outbox_relay_2` → 2); nil otherwise.
    public static func indexFromSlotName(_ name: String, base: String) -> Int? {
        guard name.hasPrefix(base + "_") else { return nil }
        return number(name.dropFirst(base.count + 1))
    }

    // MARK: SQL

    /// The shard a key belongs to, as SQL over `column`: `abs(hashtext(mq_key) % N)`.
    /// `hashtext` is a built-in immutable function, as publication row filters require. The
    /// remainder is taken before `abs`: `abs(hashtext(k))` fails with "integer out of range"
    /// for a key hashing to -2^31, and a filter that errors stops the walsender on that row.
    /// `%` keeps the dividend's sign, so `abs` folds -r and r together; every value in
    /// 0..<N is still reached and a key maps to exactly one of them.
    public static func shardExpressionSQL(count: Int, column: String = "mq_key") -> String {
        "abs(hashtext(\(column)) % \(count))"
    }

    /// True for the rows of this shard: the publication's row filter, and the sweeper's and
    /// the first start's extra condition. Built from integers only: safe to inline.
    public func predicateSQL(column: String = "mq_key") -> String {
        "\(Self.shardExpressionSQL(count: count, column: column)) = \(index)"
    }
}

/// A `--shard` or `--shards` value that is not usable; the message names the fix.
public enum ShardSpecError: Error, Equatable, CustomStringConvertible {
    case notIOverN(String)
    case badCount(String)
    case indexOutOfRange(index: Int, count: Int)

    public var description: String {
        switch self {
        case .notIOverN(let text):
            "shard \"\(text)\" is not of the form I/N. Fix: pass the shard index and the shard count, e.g. --shard 0/3 for the first of three shards (indexes run from 0 to N-1)."
        case .badCount(let text):
            "shard count \"\(text)\" must be a whole number from 1 to \(ShardSpec.maximumCount). Fix: use the count given to `outbox-relay migrate --shards N`."
        case .indexOutOfRange(let index, let count):
            "shard index \(index) is out of range for \(count) shards. Fix: indexes run from 0 to \(count - 1), e.g. --shard \(min(max(index, 0), count - 1))/\(count)."
        }
    }
}
