@testable import RelayCore
import Testing

@Suite("Shard spec: parsing, names, predicate SQL")
struct ShardSpecTests {
    @Test(arguments: [("0/1", 0, 1), ("0/3", 0, 3), ("2/3", 2, 3), ("63/64", 63, 64), ("007/8", 7, 8)])
    func parsesIOverN(text: String, index: Int, count: Int) throws {
        let spec = try ShardSpec.parse(text)
        #expect(spec.index == index && spec.count == count)
        #expect(spec.description == "\(index)/\(count)")
    }

    @Test(arguments: ["", "1", "/", "1/", "/3", "a/3", "1/b", "1/3/5", " 1/3", "1/3 ", "+1/3", "-1/3", "1.0/3", "0x1/3", "1//3", "12345/3"])
    func refusesWhatIsNotIOverN(text: String) {
        #expect(throws: ShardSpecError.notIOverN(text)) { try ShardSpec.parse(text) }
    }

    @Test func refusesIndexesAndCountsOutOfRange() throws {
        #expect(throws: ShardSpecError.indexOutOfRange(index: 3, count: 3)) { try ShardSpec.parse("3/3") }
        #expect(throws: ShardSpecError.badCount("0")) { try ShardSpec.parse("0/0") }
        #expect(throws: ShardSpecError.badCount("65")) { try ShardSpec.parse("1/65") }
        #expect(throws: ShardSpecError.indexOutOfRange(index: -1, count: 2)) { try ShardSpec(index: -1, count: 2) }
        #expect(throws: ShardSpecError.badCount("0")) { try ShardSpec.parseCount("0") }
        #expect(throws: ShardSpecError.badCount("three")) { try ShardSpec.parseCount("three") }
        #expect(try ShardSpec.parseCount("3") == 3)
    }

    @Test func errorsNameTheProblemAndTheFix() {
        let message = ShardSpecError.indexOutOfRange(index: 3, count: 3).description
        #expect(message.contains("0 to 2") && message.contains("--shard 2/3"), "\(message)")
        #expect(ShardSpecError.notIOverN("x").description.contains("--shard 0/3"))
        #expect(ShardSpecError.badCount("0").description.contains("migrate --shards"))
    }

    @Test func namesCarryIndexAndCount() throws {
        let spec = try ShardSpec.parse("1/3")
        #expect(spec.slotName(base: "outbox_relay") == "outbox_relay_1")
        #expect(spec.publicationName(base: "outbox_pub") == "outbox_pub_1_of_3")
        #expect(ShardSpec.fromPublicationName("outbox_pub_1_of_3", base: "outbox_pub") == spec)
        #expect(ShardSpec.fromPublicationName("outbox_pub", base: "outbox_pub") == nil)
        #expect(ShardSpec.fromPublicationName("outbox_pub_3_of_3", base: "outbox_pub") == nil, "index out of range is not a shard")
        #expect(ShardSpec.fromPublicationName("other_pub_1_of_3", base: "outbox_pub") == nil)
        #expect(ShardSpec.fromPublicationName("outbox_pub_x_of_3", base: "outbox_pub") == nil)
        #expect(ShardSpec.indexFromSlotName("outbox_relay_2", base: "outbox_relay") == 2)
        #expect(ShardSpec.indexFromSlotName("outbox_relay", base: "outbox_relay") == nil)
        #expect(ShardSpec.indexFromSlotName("outbox_relay_bench", base: "outbox_relay") == nil)
        #expect(ShardSpec.all(count: 3).map(\.description) == ["0/3", "1/3", "2/3"])
    }

    @Test func predicateTakesTheRemainderBeforeAbs() throws {
        // abs(hashtext(k)) overflows int4 for a hash of -2^31; the remainder first cannot.
        #expect(try ShardSpec.parse("2/3").predicateSQL() == "abs(hashtext(mq_key) % 3) = 2")
        #expect(ShardSpec.shardExpressionSQL(count: 4, column: "o.mq_key") == "abs(hashtext(o.mq_key) % 4)")
        // The Swift model of the same arithmetic on int4: every hash, the extremes included,
        // lands in exactly one shard in 0..<N without overflow.
        for count in 1...8 {
            for hash in [Int32.min, Int32.min + 1, -7, -1, 0, 1, 7, Int32.max] {
                let shard = abs(hash % Int32(count))  // `%` first: in (-N, N), abs cannot trap
                #expect(shard >= 0 && shard < count)
            }
        }
    }
}
