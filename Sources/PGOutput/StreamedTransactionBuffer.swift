#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Holds the raw change messages of streamed (not yet committed) transactions until their
/// Stream Commit, and drops them on Stream Abort, so aborted work is never published.
///
/// Memory is bounded by `memoryBudget` across all open transactions; past it, a
/// transaction moves to a temp file in `spillDirectory` and is replayed from there record
/// by record, so a transaction of any size costs a bounded amount of memory.
public final class StreamedTransactionBuffer {
    /// The relay passes `streaming-memory` (its default is in the CLI's `SettingsCatalog`).
    public let memoryBudget: Int
    public let spillDirectory: String
    public private(set) var bytesInMemory = 0
    public private(set) var bytesSpilled = 0
    public var openTransactions: Int { transactions.count }

    private enum Position { case memory(Int), file(Int64) }

    private final class Transaction {
        var messages: [[UInt8]] = []
        var memoryBytes = 0
        var file: UnsafeMutablePointer<FILE>?
        var path: String?
        var fileBytes: Int64 = 0
        /// Where each subtransaction's first change was recorded, for subtransaction aborts.
        var subxactStart: [UInt32: Position] = [:]
        var subxactOrder: [UInt32] = []
    }

    private var transactions: [UInt32: Transaction] = [:]

    public init(memoryBudget: Int, spillDirectory: String) {
        self.memoryBudget = memoryBudget
        self.spillDirectory = spillDirectory
    }

    deinit { close() }

    /// Records one change of top-level transaction `xid`, made by subtransaction `subxid`
    /// (equal to `xid` for the top level).
    public func append(xid: UInt32, subxid: UInt32, message: UnsafeRawBufferPointer) throws(PGOutputError) {
        let txn = transactions[xid] ?? { let t = Transaction(); transactions[xid] = t; return t }()
        if subxid != xid, txn.subxactStart[subxid] == nil {
            txn.subxactStart[subxid] = txn.file == nil ? .memory(txn.messages.count) : .file(txn.fileBytes)
            txn.subxactOrder.append(subxid)
        }
        if txn.file == nil, bytesInMemory + message.count > memoryBudget {
            try spill(xid, txn)
        }
        if let file = txn.file {
            try write(file, txn, message)
        } else {
            txn.messages.append(Array(message))
            txn.memoryBytes += message.count
            bytesInMemory += message.count
        }
    }

    public func append(xid: UInt32, subxid: UInt32, message: [UInt8]) throws(PGOutputError) {
        var failure: PGOutputError?
        message.withUnsafeBytes { raw in
            do throws(PGOutputError) { try append(xid: xid, subxid: subxid, message: raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Stream Abort: drops the whole transaction, or only what `subxid` and the
    /// subtransactions after it recorded (they nest, so truncating there is exact).
    public func abort(xid: UInt32, subxid: UInt32) throws(PGOutputError) {
        guard let txn = transactions[xid] else { return }
        if subxid == xid {
            discard(xid, txn)
            return
        }
        guard let start = txn.subxactStart[subxid], let orderIndex = txn.subxactOrder.firstIndex(of: subxid) else { return }
        for later in txn.subxactOrder[orderIndex...] { txn.subxactStart[later] = nil }
        txn.subxactOrder.removeSubrange(orderIndex...)
        switch start {
        case .memory(let index):
            if txn.file != nil {
                // Spilled after the subtransaction began: its start was converted on spill.
                return
            }
            let dropped = txn.messages[index...].reduce(0) { $0 + $1.count }
            txn.messages.removeSubrange(index...)
            txn.memoryBytes -= dropped
            bytesInMemory -= dropped
        case .file(let offset):
            guard let file = txn.file else { return }
            fflush(file)
            guard ftruncate(fileno(file), off_t(offset)) == 0 else {
                throw PGOutputError(.spillFailed, "could not truncate spill file \(txn.path ?? "?"): errno \(errno)")
            }
            fseeko(file, off_t(offset), SEEK_SET)
            bytesSpilled -= Int(txn.fileBytes - offset)
            txn.fileBytes = offset
        }
    }

    /// Stream Commit: hands every recorded change of `xid` to `body` in order, then frees
    /// the transaction. From a spill file, records are read one at a time into one buffer.
    public func commit(xid: UInt32, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let txn = transactions[xid] else { return }
        defer { discard(xid, txn) }
        if let file = txn.file {
            fflush(file)
            rewind(file)
            var header = [UInt8](repeating: 0, count: 4)
            var buffer = [UInt8](repeating: 0, count: 4096)
            var consumed: Int64 = 0
            while consumed < txn.fileBytes {
                guard fread(&header, 1, 4, file) == 4 else {
                    throw PGOutputError(.spillFailed, "spill file \(txn.path ?? "?") ended early at byte \(consumed)")
                }
                let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
                if buffer.count < length { buffer = [UInt8](repeating: 0, count: length) }
                let read = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, length, file) }
                guard read == length else {
                    throw PGOutputError(.spillFailed, "spill file \(txn.path ?? "?") ended inside a record at byte \(consumed)")
                }
                try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
                consumed += Int64(4 + length)
            }
        } else {
            for message in txn.messages { try message.withUnsafeBytes { try body($0) } }
        }
    }

    /// Drops everything and removes spill files (shutdown, or a session restart).
    public func close() {
        for (xid, txn) in transactions { discard(xid, txn) }
    }

    private func spill(_ xid: UInt32, _ txn: Transaction) throws(PGOutputError) {
        let path = "\(spillDirectory)/outbox-relay-xid\(xid)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).spill"
        guard let file = fopen(path, "w+b") else {
            throw PGOutputError(.spillFailed, "could not create spill file \(path): \(String(cString: strerror(errno))); check --spill-dir and free disk space")
        }
        unlink(path)  // nothing to clean up even after a crash; the open handle keeps it alive
        txn.file = file
        txn.path = path
        var converted: [UInt32: Position] = [:]
        for (index, message) in txn.messages.enumerated() {
            for (sub, start) in txn.subxactStart {
                if case .memory(let i) = start, i == index { converted[sub] = .file(txn.fileBytes) }
            }
            var failure: PGOutputError?
            message.withUnsafeBytes { raw in
                do throws(PGOutputError) { try write(file, txn, raw) } catch { failure = error }
            }
            if let failure { throw failure }
        }
        for (sub, start) in txn.subxactStart {
            if case .memory(let i) = start, i >= txn.messages.count { converted[sub] = .file(txn.fileBytes) }
        }
        for (sub, position) in converted { txn.subxactStart[sub] = position }
        bytesInMemory -= txn.memoryBytes
        txn.memoryBytes = 0
        txn.messages = []
    }

    private func write(_ file: UnsafeMutablePointer<FILE>, _ txn: Transaction, _ message: UnsafeRawBufferPointer) throws(PGOutputError) {
        let n = message.count
        var header: [UInt8] = [UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16),
                               UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
        guard fwrite(&header, 1, 4, file) == 4, n == 0 || fwrite(message.baseAddress, 1, n, file) == n else {
            throw PGOutputError(.spillFailed, "could not write spill file \(txn.path ?? "?"): \(String(cString: strerror(errno))); check free disk space in the spill directory")
        }
        txn.fileBytes += Int64(4 + n)
        bytesSpilled += 4 + n
    }

    private func discard(_ xid: UInt32, _ txn: Transaction) {
        if let file = txn.file {
            fclose(file)
            txn.file = nil
            bytesSpilled -= Int(txn.fileBytes)
        }
        bytesInMemory -= txn.memoryBytes
        transactions[xid] = nil
    }
}
