import Foundation
@testable import PGOutput
import Testing

@Suite("Streamed-transaction buffer")
struct StreamedTransactionBufferTests {
    func replay(_ buffer: StreamedTransactionBuffer, _ xid: UInt32) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        try buffer.commit(xid: xid) { out.append(Array($0)) }
        return out
    }

    func record(_ n: Int, size: Int = 100) -> [UInt8] { [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: size) + Array(String(n).utf8) }

    @Test func belowTheBoundStaysInMemory() throws {
        let buffer = StreamedTransactionBuffer(memoryBudget: 10_000, spillDirectory: NSTemporaryDirectory())
        for i in 0..<50 { try buffer.append(xid: 1, subxid: 1, message: record(i)) }
        #expect(buffer.bytesSpilled == 0 && buffer.bytesInMemory > 0)
        #expect(try replay(buffer, 1) == (0..<50).map { record($0) })
        #expect(buffer.bytesInMemory == 0 && buffer.openTransactions == 0)
    }

    @Test("past the bound it spills and replays every record in order")
    func spills() throws {
        let buffer = StreamedTransactionBuffer(memoryBudget: 4_096, spillDirectory: NSTemporaryDirectory())
        for i in 0..<2_000 { try buffer.append(xid: 9, subxid: 9, message: record(i, size: Int.random(in: 0...300))) }
        #expect(buffer.bytesSpilled > 0)
        #expect(buffer.bytesInMemory <= 4_096)
        let out = try replay(buffer, 9)
        #expect(out.count == 2_000)
        #expect(zip(out, 0..<2_000).allSatisfy { $0.0.suffix(String($0.1).utf8.count) == ArraySlice(String($0.1).utf8) })
        #expect(buffer.openTransactions == 0)
    }

    @Test("a subtransaction abort drops only its records, in memory and spilled", arguments: [1_000_000, 512])
    func subtransactionAbort(budget: Int) throws {
        let buffer = StreamedTransactionBuffer(memoryBudget: budget, spillDirectory: NSTemporaryDirectory())
        for i in 0..<10 { try buffer.append(xid: 1, subxid: 1, message: record(i)) }
        for i in 10..<20 { try buffer.append(xid: 1, subxid: 2, message: record(i)) }
        try buffer.abort(xid: 1, subxid: 2)
        for i in 20..<25 { try buffer.append(xid: 1, subxid: 1, message: record(i)) }
        #expect(try replay(buffer, 1) == ((0..<10).map { record($0) } + (20..<25).map { record($0) }))
    }

    @Test("a whole abort drops everything; other transactions are untouched")
    func wholeAbort() throws {
        let buffer = StreamedTransactionBuffer(memoryBudget: 1_024, spillDirectory: NSTemporaryDirectory())
        for i in 0..<100 { try buffer.append(xid: 1, subxid: 1, message: record(i)); try buffer.append(xid: 2, subxid: 2, message: record(i + 1_000)) }
        try buffer.abort(xid: 1, subxid: 1)
        #expect(try replay(buffer, 1).isEmpty)
        #expect(try replay(buffer, 2).count == 100)
        #expect(buffer.openTransactions == 0)
    }

    @Test func unwritableSpillDirectoryIsAClearError() throws {
        let buffer = StreamedTransactionBuffer(memoryBudget: 10, spillDirectory: "/nonexistent/dir")
        let error = #expect(throws: PGOutputError.self) { try buffer.append(xid: 1, subxid: 1, message: record(1)) }
        #expect(error?.code == .spillFailed)
        #expect(error?.description.contains("/nonexistent/dir") == true)
    }
}
