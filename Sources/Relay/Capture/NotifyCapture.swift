import Foundation
import Logging
import PGOutput
import PostgresClient
import RelayCore
import Synchronization
import Threading

/// Notify capture: for connections that cannot replicate (poolers). LISTENs on a plain
/// connection; it reads committed changes from the same pgoutput slot with
/// `pg_logical_slot_peek_binary_changes` (through a cursor, so client memory stays bounded
/// whatever the transaction size), publishes them through the shared publisher, and
/// advances the slot with `pg_replication_slot_advance` once they are acknowledged.
///
/// While reads keep finding rows it reads again at once and clears the doorbell flag, so
/// writers skip NOTIFY; once a read finds nothing it sets the flag, reads once more, and
/// sleeps until a notification or `notifyFallbackInterval` (`DoorbellPolicy`).
///
/// Only one relay may read the slot: a session advisory lock makes the others standbys.
final class NotifyCapture: @unchecked Sendable {
    private let configuration: RelayConfiguration
    private let publisher: Publisher
    private let logger: Logger
    private let metrics: RelayMetrics
    private let health: RelayHealth
    private let wakeSignal = WakeSignal()
    private var recorder: ConfirmationRecorder?
    /// What the slot was last advanced to in this session.
    private var advanced = LSN.invalid
    private let horizons: SessionHorizons
    static let fetchSize = 2_000

    init(configuration: RelayConfiguration, publisher: Publisher, logger: Logger, metrics: RelayMetrics, health: RelayHealth) {
        self.configuration = configuration; self.publisher = publisher; self.logger = logger
        self.metrics = metrics; self.health = health
        horizons = SessionHorizons(slot: configuration.slotName, logger: logger)
    }

    func wake() { wakeSignal.signal() }

    func runSession() throws {
        let reader = try PGConnection.connectBlocking(configuration.databaseURL, applicationName: configuration.applicationName)
        let listener = try PGConnection.connectBlocking(configuration.notifyListenURL ?? configuration.databaseURL,
                                                        applicationName: "\(configuration.applicationName)-listen")
        let lockKey = Int64(truncatingIfNeeded: configuration.slotName.utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 })
        guard try reader.queryBlocking("SELECT pg_try_advisory_lock($1) AS got", [.int(lockKey)]).single().bool("got") else {
            throw RelayError(.slotInUse, "Another relay reads slot \"\(configuration.slotName)\" in notify mode; waiting as a standby.",
                             fix: "nothing: this relay takes over when the active one stops.", halting: false)
        }
        let setup = CaptureSessionSetup(configuration: configuration, publisher: publisher, preflight: SlotPreflight(
            slot: configuration.slotName, publication: configuration.publication, tables: configuration.tables,
            createIfMissing: configuration.createSlot))
        let slot = try setup.checkSlot(execute: { try reader.queryBlocking($0) }, createSlot: { failover in
            let created = try SlotCreationWatch(configuration, logger: logger).run(creatorPID: reader.backendPID) {
                try reader.queryBlocking(FailoverSlot.createFunctionCall(slot: configuration.slotName, failover: failover))
            }
            logger.notice("created replication slot", metadata: ["slot": "\(configuration.slotName)"])
            return try created.single().lsn("lsn")
        })
        slot.reportFailover(slot: configuration.slotName, logger: logger, metrics: metrics)
        let (recorder, horizon) = try setup.startAcknowledging(slot, horizons: horizons, execute: { try reader.queryBlocking($0) })
        self.recorder = recorder
        defer { recorder.stop(); self.recorder = nil }
        for table in configuration.tables {
            // One line per table, named only when there are several: the fix is per table.
            var metadata: Logger.Metadata = configuration.tables.count > 1 ? ["table": "\(table)"] : [:]
            switch try NotifyTrigger.installedBlocking(on: reader, table: table) {
            case .none:
                metadata["fix"] = "run `outbox-relay migrate --capture notify` as the table owner"
                logger.warning("notify capture: the outbox trigger is not installed; relying on the fallback timer", metadata: metadata)
            case .everyCommit:
                metadata["fix"] = "run `outbox-relay migrate --capture notify` as the table owner (replaces it in place)"
                logger.warning("notify capture: the outbox trigger predates the doorbell and notifies on every commit, which serialises writers under load",
                               metadata: metadata)
            case .doorbell:
                break
            }
        }
        let doorbell = Doorbell(channel: configuration.notifyChannel)
        // Start from a known flag: a relay that crashed may have left it set.
        try doorbell.write(listening: false, on: reader)
        var policy = DoorbellPolicy(listening: false)
        var ringOutAfterRead = false
        var ringInWriters: RingInWriters?
        func ring(_ listening: Bool) throws {
            try doorbell.write(listening: listening, on: reader)
            // Taken after the flag committed: a writer that read it clear and has not
            // committed is among these (the lost-wake-up race, DoorbellPolicy).
            ringInWriters = listening ? try RingInWriters.take(on: reader) : nil
            policy.flagWritten(listening: listening, writersInProgress: ringInWriters != nil)
            metrics.doorbellListening.record(listening ? 1 : 0)
        }
        try listener.queryBlocking("LISTEN \(quoteIdentifier(configuration.notifyChannel))")
        advanced = slot.confirmedFlush
        let healthDetail = "notify mode, slot \(configuration.slotName)"
        health.set(.streaming, healthDetail)
        let listenCheck = ListenCheck(channel: configuration.notifyChannel, slot: configuration.slotName, logger: logger,
                                      metrics: metrics, health: health, healthDetail: healthDetail)
        metrics.streaming.record(1)
        defer { metrics.streaming.record(0) }
        logger.info("notify capture running", metadata: ["slot": "\(configuration.slotName)", "channel": "\(configuration.notifyChannel)"])

        let pipeline = CapturePipeline(publisher: publisher, logger: logger, metrics: metrics, buffer: nil,
                                       tables: configuration.tables, horizon: horizon)
        var polling = DeafPolling()
        let origin = ContinuousClock.now
        while publisher.stopDeadline == nil {
            if let reason = publisher.pendingRestart { throw SessionRestart(reason: reason) }
            try listenCheck.tick(reader: reader, listener: listener)
            // A wake-up that found nothing (a notification for rows already read) keeps the flag.
            let foundRows = try drainSlot(reader, pipeline: pipeline, afterRead: { found in if ringOutAfterRead && found { try ring(false) } })
            health.noteProgress(inFlight: publisher.inFlightEvents)
            if publisher.stopDeadline != nil { break }
            polling.read(foundRows: foundRows, now: ContinuousClock.now - origin)
            if policy.mustClear(deaf: listenCheck.isDeaf) { try ring(false) }
            var action = policy.drained(foundRows: foundRows, deaf: listenCheck.isDeaf)
            if action == .sleep {
                let limit = polling.sleepLimit(deaf: listenCheck.isDeaf, fallback: configuration.notifyFallbackInterval,
                                               now: ContinuousClock.now - origin)
                action = try sleep(listener: listener, reader: reader, listenCheck: listenCheck, limit: limit,
                                   writers: &ringInWriters, policy: &policy)
            }
            // Ringing in must precede the read after it (or a row committed in between would
            // wait for the timer). Ringing out waits until the next read has fetched its
            // rows: the write then overlaps their Kafka acknowledgements instead of adding
            // a round trip before them (commit→ack latency at a trickle).
            if action == .ringIn { try ring(true) }
            ringOutAfterRead = action == .ringOut
        }
        health.set(.draining)
        let drained = publisher.drain(until: publisher.stopDeadline ?? .now)
        try advance(reader, to: publisher.confirmableLSN, force: true)
        // Nobody listens once this relay stops: writers stop ringing. Best effort (the next
        // session writes the flag first anyway); only on a clean stop, where the
        // connection just answered, so it cannot hang the stop.
        if policy.listening {
            do {
                try doorbell.write(listening: false, on: reader)
                metrics.doorbellListening.record(0)
            } catch {
                logger.warning("could not clear the doorbell flag at stop; writers notify until a relay starts", metadata: ["error": "\(error)"])
            }
        }
        logger.notice("notify capture stopped", metadata: ["confirmed": "\(advanced)", "drain": "\(drained)"])
        if case .timedOut(let unacknowledged) = drained { throw StopDeadlinePassed(unacknowledged: unacknowledged) }
    }

    /// Sleeps until a writer's notification, the wake signal or `limit` (the fallback timer,
    /// or shorter while LISTEN is deaf and rows came recently: `DeafPolling`; a probe of
    /// `ListenCheck` ends the sleep too, for one extra read a minute). While the policy
    /// awaits the transactions in progress at ring-in, it also looks between slices whether
    /// some of them have ended, and then returns to read once more (`WriterWait`). Returns
    /// the policy's next action.
    private func sleep(listener: PGConnection, reader: PGConnection, listenCheck: ListenCheck, limit: Duration,
                       writers: inout RingInWriters?, policy: inout DoorbellPolicy) throws -> DoorbellPolicy.Action {
        var wait = WriterWait(limit: limit)
        while let slice = policy.awaitingWriters ? wait.nextSlice : wait.left {
            let notified = listenCheck.hasRings(try listener.waitForNotificationsBlocking(timeout: slice, wakeFD: wakeSignal.fd))
            let woken = wakeSignal.drain()
            if notified || woken { return policy.woke(byNotification: notified) }
            guard policy.awaitingWriters, writers != nil else { break }
            if try writers!.someEnded(on: reader) { return policy.writersEnded(stillRunning: writers!.running > 0) }
            wait.stillRunning(after: slice)
        }
        return policy.woke(byNotification: false)
    }

    /// Reads everything committed up to now, publishes it, waits for the acks, advances.
    /// `afterRead` runs once the changes are fetched, while their acknowledgements are on
    /// their way, with whether there were any. Returns whether it read any changes.
    private func drainSlot(_ conn: PGConnection, pipeline: CapturePipeline, afterRead: (Bool) throws -> Void) throws -> Bool {
        // The flushed position, not `pg_current_wal_lsn()` (written, maybe not flushed): the
        // peek decodes only flushed WAL, so a commit written but not yet flushed when it
        // runs would be missing from the read, flushed by the time of the advance, and
        // skipped by an advance to the written position (invariant 3).
        let upTo = try conn.queryBlocking("SELECT pg_current_wal_flush_lsn()::text AS lsn").single().lsn("lsn")
        let whileBlocked: () throws -> Void = { [self] in health.noteProgress(inFlight: publisher.inFlightEvents) }
        // The slot is notify mode's read cursor: after a drain that read changes it must
        // move (record first), or the next drain would read them again.
        var readChanges = false
        // Round trips are the cost at a trickle: BEGIN and DECLARE go in one, a FETCH that
        // returns less than asked ends the read, CLOSE and COMMIT go in one. The names and
        // the LSN are quoted literals (the simple-query protocol takes no parameters).
        do {
            try conn.executeScriptBlocking("""
                BEGIN; DECLARE outbox_changes NO SCROLL CURSOR FOR
                SELECT data FROM pg_logical_slot_peek_binary_changes(\(quoteLiteral(configuration.slotName)), \(quoteLiteral(upTo.description))::pg_lsn, NULL,
                    'proto_version', '1', 'publication_names', \(quoteLiteral(configuration.publication)))
                """)
            while true {
                let rows = try conn.queryBlocking("FETCH \(Self.fetchSize) FROM outbox_changes").rows
                if !rows.isEmpty { readChanges = true }
                for row in rows {
                    try row.bytea("data").withUnsafeBytes { try pipeline.handle($0, whileBlocked: whileBlocked) }
                }
                if rows.count < Self.fetchSize { break }
            }
            try conn.executeScriptBlocking("CLOSE outbox_changes; COMMIT")
        } catch {
            _ = try? conn.queryBlocking("ROLLBACK")
            throw error
        }
        try afterRead(readChanges)
        // Everything committed before `upTo` is now in flight or done; once all of it is
        // acknowledged, the slot may move to `upTo` even past non-outbox WAL (quiet outbox).
        while true {
            switch publisher.drain(until: .now + .seconds(1)) {
            case .drained:
                publisher.observeServerWALEnd(upTo)
                try advance(conn, to: publisher.confirmableLSN, force: readChanges)
                return readChanges
            case .timedOut, .waiting:
                if let reason = publisher.pendingRestart { throw SessionRestart(reason: reason) }
                if publisher.stopDeadline != nil { return readChanges }  // the final advance covers what was acknowledged
                health.noteProgress(inFlight: publisher.inFlightEvents)
            }
        }
    }

    /// Advances the slot, the read cursor, to `lsn` once recorded. `force` (a drain that
    /// read changes, or a stop) waits for the record; otherwise the recorder catches up and
    /// a later drain advances.
    private func advance(_ conn: PGConnection, to lsn: LSN, force: Bool) throws {
        guard let recorder else { return }
        let target: LSN
        if force {
            target = min(lsn, recorder.recordNow(lsn, longest: .seconds(5)))
        } else {
            try recorder.offer(lsn)
            target = min(lsn, recorder.recorded)
        }
        guard target > advanced else { return }
        try conn.queryBlocking("SELECT pg_replication_slot_advance($1, $2::pg_lsn)", [.text(configuration.slotName), .text(target.description)])
        advanced = target
        metrics.recordConfirmed(target)
    }
}
