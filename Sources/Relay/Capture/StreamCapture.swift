import Foundation
import Logging
import PGOutput
import PostgresClient
import RelayCore
import Synchronization

/// Stream capture's transport: one replication session (`replication=database`,
/// START_REPLICATION with pgoutput v2 and streaming) from preflight to the end of the
/// COPY, and its acknowledgement: standby status updates, each LSN recorded in
/// `outbox_relay_slot` before it is confirmed. Runs on the relay's capture thread; every
/// call here blocks. Decoding and publishing are the shared `CapturePipeline`'s.
final class StreamCapture: @unchecked Sendable {  // only `current` is touched off the capture thread
    private let configuration: RelayConfiguration
    private let publisher: Publisher
    private let logger: Logger
    private let metrics: RelayMetrics
    private let health: RelayHealth
    /// The replication connection of the running session, so `wake()` can interrupt it.
    let current = Mutex<ReplicationConnection?>(nil)

    private var lastReceived = LSN.invalid
    /// The server's clock when it sent the last WAL message (PostgreSQL epoch, µs).
    private var lastSendTime: Int64 = 0
    private var lastSentFlush = LSN.invalid
    private var nextStatusAt = ContinuousClock.now
    private var recorder: ConfirmationRecorder?
    private let horizons: SessionHorizons

    init(configuration: RelayConfiguration, publisher: Publisher, logger: Logger, metrics: RelayMetrics, health: RelayHealth) {
        self.configuration = configuration
        self.publisher = publisher
        self.logger = logger
        self.metrics = metrics
        self.health = health
        horizons = SessionHorizons(slot: configuration.slotName, logger: logger)
    }

    func wake() { current.withLock { $0 }?.wake() }

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

        let setup = CaptureSessionSetup(configuration: configuration, publisher: publisher, preflight: SlotPreflight(
            slot: configuration.slotName, publication: configuration.publication, tables: configuration.tables,
            createIfMissing: configuration.createSlot,
            shard: configuration.shard, replicationCommands: true))
        // The very first start: the slot is created with an exported snapshot, imported at
        // once (the export ends with the connection's next command) to publish the rows
        // committed before the slot, which it will never stream.
        var gap: PGConnection?
        let slot = try setup.checkSlot(execute: { try connection.execute($0) }, createSlot: { failover in
            let created = try SlotCreationWatch(configuration, logger: logger).run(creatorPID: connection.backendPID) {
                try connection.execute(FailoverSlot.createReplicationCommand(slot: configuration.slotName, failover: failover)).single()
            }
            gap = try GapPublisher.importSnapshot(try created.string("snapshot_name"), dsn: configuration.databaseURL,
                                                  applicationName: "\(configuration.applicationName)-first-start")
            logger.notice("created replication slot", metadata: ["slot": "\(configuration.slotName)"])
            return try created.lsn("consistent_point")
        })
        slot.reportFailover(slot: configuration.slotName, logger: logger, metrics: metrics)
        if let gap { try publishRowsBeforeSlot(from: gap, connection: connection) }
        let (recorder, horizon) = try setup.startAcknowledging(slot, horizons: horizons, execute: { try connection.execute($0) })
        self.recorder = recorder
        defer { recorder.stop(); self.recorder = nil }
        lastReceived = slot.confirmedFlush
        lastSentFlush = slot.confirmedFlush
        let buffer = StreamedTransactionBuffer(memoryBudget: configuration.streamingMemoryBytes,
                                               spillDirectory: configuration.spillDirectory)
        defer { buffer.close() }
        let pipeline = CapturePipeline(publisher: publisher, logger: logger, metrics: metrics, buffer: buffer,
                                       tables: configuration.tables, horizon: horizon)

        let command = "START_REPLICATION SLOT \(quoteIdentifier(configuration.slotName)) LOGICAL 0/0 "
            + "(proto_version '2', streaming 'on', publication_names \(quoteLiteral(quoteIdentifier(configuration.publication))))"
        do {
            try connection.startReplication(command)
        } catch let error as PGError where error.sqlState == PGError.State.objectInUse {
            throw CaptureSessionSetup.slotInUse(configuration.slotName, pid: nil)
        }
        health.set(.streaming, "slot \(configuration.slotName)\(configuration.shard.map { " (shard \($0))" } ?? "") from \(slot.confirmedFlush)")
        metrics.streaming.record(1)
        defer { metrics.streaming.record(0) }
        logger.info("streaming", metadata: ["slot": "\(configuration.slotName)", "from": "\(slot.confirmedFlush)", "server": "\(connection.target)"])

        let whileBlocked: () throws -> Void = { [self] in
            health.noteProgress(inFlight: publisher.inFlightEvents)
            try sendStatusIfDue(connection, force: false)
        }
        do {
            try stream(connection, pipeline: pipeline, whileBlocked: whileBlocked)
        } catch let deadline as StopDeadlinePassed {
            // Stopping, and the deadline passed inside a transaction (the window was full
            // and the broker did not answer): confirm what was acknowledged, end the COPY.
            try? sendStatusIfDue(connection, force: true, final: true)
            connection.endCopy()
            throw deadline
        }

        // Graceful stop at a transaction boundary: wait for outstanding deliveries until
        // the stop's deadline, confirm, end the COPY.
        let drained = try publisher.drain(until: publisher.stopDeadline ?? .now, whileWaiting: whileBlocked)
        try sendStatusIfDue(connection, force: true, final: true)
        connection.endCopy()
        logger.notice("stream stopped", metadata: ["confirmed": "\(lastSentFlush)", "drain": "\(drained)"])
        if case .timedOut(let unacknowledged) = drained { throw StopDeadlinePassed(unacknowledged: unacknowledged) }
    }

    /// First start: publishes the INIT rows committed before the new slot, in order, before
    /// streaming anything newer. If that fails the slot is dropped again (it is not recorded
    /// yet), so the next attempt is a first start again and nothing is skipped.
    private func publishRowsBeforeSlot(from gap: PGConnection, connection: ReplicationConnection) throws {
        do {
            let outcome = try publisher.publishGap(
                GapPublisher(router: configuration.router, tables: configuration.tables, headerStyle: configuration.headerStyle, shard: configuration.shard), from: gap)
            logger.notice("first start: published the rows still INIT that were committed before the slot", metadata: [
                "slot": "\(configuration.slotName)", "published": "\(outcome.published)", "unroutable": "\(outcome.unroutable)"])
        } catch {
            logger.error("first start: could not publish the rows committed before the slot; dropping the new slot to start over",
                         metadata: ["slot": "\(configuration.slotName)", "error": "\(error)"])
            _ = try? connection.execute("DROP_REPLICATION_SLOT \(quoteIdentifier(configuration.slotName))")
            throw SessionRestart(reason: "first start interrupted: \(error)")
        }
    }

    /// Reads and handles messages until a stop request reaches a transaction boundary.
    private func stream(_ connection: ReplicationConnection, pipeline: CapturePipeline, whileBlocked: () throws -> Void) throws {
        var draining = false
        var catchUp = configuration.catchUpReads
        metrics.catchUpReads.record(0)
        defer {
            metrics.catchUpReads.record(0)
            health.setReadingInBatches(false)
        }
        while true {
            if let reason = publisher.pendingRestart { throw SessionRestart(reason: reason) }
            if publisher.stopDeadline != nil && !draining {
                draining = true
                health.set(.draining)
            }
            // Stop at a transaction boundary, so a graceful stop leaves no half-published
            // transaction behind and a restart publishes no duplicates.
            if draining && !pipeline.insideTransaction { return }
            var replyNow = false
            var burst = 0
            let onMessage: (UnsafeRawBufferPointer) throws -> Void = { [self] bytes in
                burst += bytes.count
                replyNow = try handleMessage(bytes, pipeline: pipeline, whileBlocked: whileBlocked) || replyNow
            }
            let wait = catchUp.waitTimeout(otherwise: .milliseconds(100))
            switch try connection.readCopyData(timeoutMilliseconds: Int32(wait.inSeconds * 1_000), onMessage) {
            case .message:
                // Drain the rest of the burst without a syscall per message, but not past a
                // transaction boundary once a stop was asked for: libpq may hold thousands of
                // buffered messages, and a slow broker would stretch the stop over all of them.
                var budget = 4_096
                while budget > 0, publisher.stopDeadline == nil || pipeline.insideTransaction,
                      try connection.readBufferedCopyData(onMessage) { budget -= 1 }
                apply(catchUp.afterBurst(sent(pipeline), bytes: burst), to: connection)
            case .timedOut:
                apply(catchUp.afterEmptyWait(), to: connection)
            case .woken:
                break
            }
            health.noteProgress(inFlight: publisher.inFlightEvents)
            try sendStatusIfDue(connection, force: replyNow)
        }
    }

    /// What the last message handled was, for `CatchUpReads`.
    private func sent(_ pipeline: CapturePipeline) -> CatchUpReads.Sent {
        if pipeline.inStreamedBlock { return .inProgress }
        guard let commitTime = pipeline.commitTime else { return .unknown }
        return .committed(lag: .microseconds(lastSendTime - commitTime))
    }

    /// Carries out a change of `CatchUpReads`' mode on the socket.
    private func apply(_ lowWater: CatchUpReads.LowWater, to connection: ReplicationConnection) {
        guard let lowWater else { return }
        if connection.setReceiveLowWater(lowWater) {
            metrics.catchUpReads.record(lowWater > 1 ? 1 : 0)
            health.setReadingInBatches(lowWater > 1)
        } else {
            logger.debug("the socket refused a receive low-water mark of \(lowWater) bytes; reading every message as it arrives")
        }
    }

    /// Handles one CopyData message; returns true when the server asked for a reply.
    private func handleMessage(_ bytes: UnsafeRawBufferPointer, pipeline: CapturePipeline, whileBlocked: () throws -> Void) throws -> Bool {
        switch try ReplicationMessage.parse(bytes) {
        case .keepalive(let walEnd, _, let replyRequested):
            if walEnd > lastReceived { lastReceived = walEnd }
            publisher.observeServerWALEnd(walEnd)
            return replyRequested
        case .xLogData(_, let walEnd, let sendTime, let range):
            lastSendTime = sendTime
            if walEnd > lastReceived { lastReceived = walEnd }
            try pipeline.handle(UnsafeRawBufferPointer(rebasing: bytes[range]), whileBlocked: whileBlocked)
            return false
        }
    }

    /// `force` sends a status now (the server asked, or a stop); `final` (a stop) also
    /// records what is acknowledged first, waiting up to a second for the record.
    private func sendStatusIfDue(_ connection: ReplicationConnection, force: Bool, final: Bool = false) throws {
        let now = ContinuousClock.now
        // Confirm only what the slot record already holds (invariant 8): record first. The
        // writes run on the recorder's thread; a stop records what is acknowledged at once.
        let acknowledged = publisher.confirmableLSN
        let flush: LSN
        if let recorder {
            if final {
                // Up to a second, and never into the last half of the stop's teardown reserve.
                flush = min(acknowledged, recorder.recordNow(acknowledged, longest: .seconds(1)))
            } else {
                try recorder.offer(acknowledged)
                flush = min(acknowledged, recorder.recorded)
            }
        } else {
            flush = lastSentFlush
        }
        // Confirm promptly when the position moved (frees WAL sooner, keeps lag metrics
        // honest), but at most every 100 ms; otherwise once per status interval.
        let moved = flush > lastSentFlush && now >= nextStatusAt - configuration.statusInterval + .milliseconds(100)
        guard force || moved || now >= nextStatusAt else { return }
        let clock = RelayMetrics.postgresNow()
        try connection.sendCopyData(ReplicationMessage.standbyStatusUpdate(
            written: max(lastReceived, flush), flushed: flush, applied: flush, clientTime: clock))
        if flush > lastSentFlush { metrics.recordConfirmed(flush) }
        lastSentFlush = max(lastSentFlush, flush)
        nextStatusAt = now + configuration.statusInterval
    }
}
