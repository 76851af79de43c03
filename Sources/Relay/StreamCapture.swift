import Foundation
import Logging
import PGOutput
import PostgresClient
import RelayCore
import Synchronization

/// Stream capture: one replication session (`replication=database`, START_REPLICATION
/// with pgoutput v2 and streaming) from preflight to the end of the COPY. Runs on the
/// relay's dedicated thread; every call here blocks.
///
/// Non-streamed transactions are published as their Inserts arrive and closed at Commit.
/// Streamed (in-progress) transactions are buffered under a memory bound, spilled beyond
/// it, published at Stream Commit and dropped at Stream Abort.
final class StreamCapture: @unchecked Sendable {  // only `current` is touched off the capture thread
    private let configuration: RelayConfiguration
    private let publisher: Publisher
    private let logger: Logger
    private let metrics: RelayMetrics
    private let health: RelayHealth
    private let stopRequested: @Sendable () -> Bool
    /// The replication connection of the running session, so `wake()` can interrupt it.
    let current = Mutex<ReplicationConnection?>(nil)

    private var decoder = PGOutputDecoder()
    private var extractor = OutboxRowExtractor()
    private var streamXid: UInt32 = 0
    private var insideTransaction = false
    private var lastReceived = LSN.invalid
    private var lastSentFlush = LSN.invalid
    private var nextStatusAt = ContinuousClock.now

    init(configuration: RelayConfiguration, publisher: Publisher, logger: Logger, metrics: RelayMetrics,
         health: RelayHealth, stopRequested: @escaping @Sendable () -> Bool) {
        self.configuration = configuration
        self.publisher = publisher
        self.logger = logger
        self.metrics = metrics
        self.health = health
        self.stopRequested = stopRequested
    }

    /// What this process last confirmed to the slot; nil before the first session.
    private(set) var lastConfirmed: LSN?

    /// Runs one session until stop (returns) or failure (throws).
    func runSession() throws {
        let connection: ReplicationConnection
        do {
            connection = try ReplicationConnection(dsn: configuration.databaseURL, applicationName: configuration.applicationName)
        } catch let error as PGError where error.sqlState == "42501" || error.message.contains("replication role") || error.message.contains("permission denied to start WAL sender") {
            throw RelayError(.missingReplicationPrivilege,
                             "The role in the database URL may not open replication connections (\(error.message)).",
                             fix: "ALTER ROLE <relay role> REPLICATION, or use notify capture mode (--capture notify), which needs no replication connection.")
        }
        current.withLock { $0 = connection }
        defer { current.withLock { $0 = nil } }

        let preflight = SlotPreflight(slot: configuration.slotName, publication: configuration.publication,
                                      createIfMissing: configuration.createSlot)
        let slot = try preflight.run(lastConfirmed: lastConfirmed, execute: { try connection.execute($0) }, createSlot: {
            do {
                try connection.execute("CREATE_REPLICATION_SLOT \(quoteIdentifier(configuration.slotName)) LOGICAL pgoutput NOEXPORT_SNAPSHOT")
                logger.notice("created replication slot", metadata: ["slot": "\(configuration.slotName)"])
            } catch let error as PGError where error.sqlState == "42710" {
                // Another relay created it first: fine, it is the same slot.
            }
        })
        if let pid = slot.activePID {
            throw RelayError(.slotInUse, "Replication slot \"\(configuration.slotName)\" is in use by process \(pid); waiting as a standby.",
                             fix: "nothing: this relay takes over when the active one stops.", halting: false)
        }
        publisher.reset(confirmed: slot.confirmedFlush)
        decoder = PGOutputDecoder()
        extractor = OutboxRowExtractor()
        insideTransaction = false
        lastReceived = slot.confirmedFlush
        lastSentFlush = slot.confirmedFlush
        lastConfirmed = slot.confirmedFlush
        let buffer = StreamedTransactionBuffer(memoryBudget: configuration.streamingMemoryBytes,
                                               spillDirectory: configuration.spillDirectory)
        defer { buffer.close() }

        let command = "START_REPLICATION SLOT \(quoteIdentifier(configuration.slotName)) LOGICAL 0/0 "
            + "(proto_version '2', streaming 'on', publication_names \(quoteLiteral(quoteIdentifier(configuration.publication))))"
        do {
            try connection.startReplication(command)
        } catch let error as PGError where error.sqlState == PGError.State.objectInUse {
            throw RelayError(.slotInUse, "Replication slot \"\(configuration.slotName)\" is in use by another relay; waiting as a standby.",
                             fix: "nothing: this relay takes over when the active one stops.", halting: false)
        }
        health.set(.streaming, "slot \(configuration.slotName) from \(slot.confirmedFlush)")
        metrics.streaming.record(1)
        defer { metrics.streaming.record(0) }
        logger.info("streaming", metadata: ["slot": "\(configuration.slotName)", "from": "\(slot.confirmedFlush)", "server": "\(connection.target)"])

        var stopping = false
        while true {
            if let reason = publisher.pendingRestart { throw SessionRestart(reason: reason) }
            if stopRequested() && !stopping {
                stopping = true
                health.set(.draining)
            }
            // Stop at a transaction boundary, so a graceful stop leaves no half-published
            // transaction behind and a restart publishes no duplicates.
            if stopping && !insideTransaction { break }
            var replyNow = false
            let outcome = try connection.readCopyData(timeoutMilliseconds: 100) { bytes in
                replyNow = try handle(bytes, connection: connection, buffer: buffer) || replyNow
            }
            if outcome == .message {
                // Drain the rest of the burst without a syscall per message.
                var budget = 4_096
                while budget > 0, try connection.readBufferedCopyData({ bytes in
                    replyNow = try handle(bytes, connection: connection, buffer: buffer) || replyNow
                }) { budget -= 1 }
            }
            health.noteProgress(inFlight: publisher.inFlightEvents)
            try sendStatusIfDue(connection, force: replyNow)
        }

        // Graceful stop: wait for outstanding deliveries, confirm, end the COPY.
        let drained = publisher.drain(timeout: configuration.drainTimeout)
        try sendStatusIfDue(connection, force: true)
        connection.endCopy()
        logger.notice("stream stopped", metadata: ["confirmed": "\(lastSentFlush)", "drained": "\(drained)"])
    }

    /// Handles one CopyData message; returns true when the server asked for a reply.
    private func handle(_ bytes: UnsafeRawBufferPointer, connection: ReplicationConnection,
                        buffer: StreamedTransactionBuffer) throws -> Bool {
        switch try ReplicationMessage.parse(bytes) {
        case .keepalive(let walEnd, _, let replyRequested):
            if walEnd > lastReceived { lastReceived = walEnd }
            publisher.observeServerWALEnd(walEnd)
            return replyRequested
        case .xLogData(_, let walEnd, _, let range):
            if walEnd > lastReceived { lastReceived = walEnd }
            try handlePGOutput(UnsafeRawBufferPointer(rebasing: bytes[range]), connection: connection, buffer: buffer)
            return false
        }
    }

    private func handlePGOutput(_ bytes: UnsafeRawBufferPointer, connection: ReplicationConnection,
                                buffer: StreamedTransactionBuffer) throws {
        let whileBlocked: () throws -> Void = { [self] in
            health.noteProgress(inFlight: publisher.inFlightEvents)
            try sendStatusIfDue(connection, force: false)
        }
        switch try decoder.decode(bytes) {
        case .begin(let begin):
            publisher.beginTransaction(commitTime: begin.commitTime)
            insideTransaction = true
        case .insert(let relationID, let xid):
            guard let relation = decoder.relations[relationID] else {
                throw PGOutputError(.unknownRelation, "Insert for relation \(relationID) before its Relation message")
            }
            guard extractor.isOutbox(relation) else { return }
            if decoder.inStreamBlock {
                try buffer.append(xid: streamXid, subxid: xid ?? streamXid, message: bytes)
                return
            }
            try publishInsert(relation: relation, bytes: bytes, whileBlocked: whileBlocked)
        case .commit(let commit):
            publisher.commitTransaction(endLSN: commit.endLSN)
            insideTransaction = false
        case .streamStart(let xid, _):
            streamXid = xid
        case .streamCommit(let xid, let commit):
            publisher.beginTransaction(commitTime: commit.commitTime)
            insideTransaction = true
            let spilledBefore = buffer.bytesSpilled
            try buffer.commit(xid: xid) { message in
                guard case .insert(let relationID, _) = try decoder.decode(message, streamed: true) else { return }
                guard let relation = decoder.relations[relationID] else {
                    throw PGOutputError(.unknownRelation, "streamed Insert for relation \(relationID) before its Relation message")
                }
                try publishInsert(relation: relation, bytes: message, whileBlocked: whileBlocked)
            }
            if buffer.bytesSpilled > spilledBefore { metrics.spilledBytes.increment(by: buffer.bytesSpilled - spilledBefore) }
            publisher.commitTransaction(endLSN: commit.endLSN)
            insideTransaction = false
        case .streamAbort(let xid, let subxid):
            try buffer.abort(xid: xid, subxid: subxid)
        case .relation, .update, .delete, .truncate, .type, .origin, .logicalMessage, .streamStop:
            break  // the publication sends inserts only; the rest needs no action
        }
    }

    private func publishInsert(relation: Relation, bytes: UnsafeRawBufferPointer, whileBlocked: () throws -> Void) throws {
        let row: OutboxRowView
        do {
            row = try extractor.view(relation: relation, tuple: decoder.newTuple, bytes: bytes)
        } catch {
            logger.error("malformed outbox row; dead-lettering it", metadata: ["error": "\(error)"])
            try publisher.publishMalformed(error, whileBlocked: whileBlocked)
            return
        }
        try publisher.publish(row, whileBlocked: whileBlocked)
    }

    private func sendStatusIfDue(_ connection: ReplicationConnection, force: Bool) throws {
        let now = ContinuousClock.now
        let flush = publisher.confirmableLSN
        // Confirm promptly when the position moved (frees WAL sooner, keeps lag metrics
        // honest), but at most every 100 ms; otherwise once per status interval.
        let moved = flush > lastSentFlush && now >= nextStatusAt - configuration.statusInterval + .milliseconds(100)
        guard force || moved || now >= nextStatusAt else { return }
        let clock = PostgresEpoch.fromUnixMicroseconds(Int64(Date().timeIntervalSince1970 * 1_000_000))
        try connection.sendCopyData(ReplicationMessage.standbyStatusUpdate(
            written: max(lastReceived, flush), flushed: flush, applied: flush, clientTime: clock))
        if flush > lastSentFlush { metrics.confirmedLSN.record(Double(flush.rawValue)) }
        lastSentFlush = max(lastSentFlush, flush)
        lastConfirmed = lastSentFlush
        nextStatusAt = now + configuration.statusInterval
    }
}
