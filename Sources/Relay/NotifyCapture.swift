import Foundation
import Logging
import PGOutput
import PostgresClient
import RelayCore
import Synchronization

/// Notify capture: for connections that cannot replicate (poolers). LISTENs on a plain
/// connection; on each notification, or every `notifyFallbackInterval` in case one was
/// lost, it reads committed changes from the same pgoutput slot with
/// `pg_logical_slot_peek_binary_changes` (through a cursor, so client memory stays bounded
/// whatever the transaction size), publishes them through the shared publisher, and
/// advances the slot with `pg_replication_slot_advance` once they are acknowledged.
///
/// Only one relay may read the slot: a session advisory lock makes the others standbys.
final class NotifyCapture: @unchecked Sendable {
    private let configuration: RelayConfiguration
    private let publisher: Publisher
    private let logger: Logger
    private let metrics: RelayMetrics
    private let health: RelayHealth
    private let stopRequested: @Sendable () -> Bool
    private let wakeSignal = WakeSignal()
    private var lastConfirmed: LSN?
    static let fetchSize = 2_000

    init(configuration: RelayConfiguration, publisher: Publisher, logger: Logger, metrics: RelayMetrics,
         health: RelayHealth, stopRequested: @escaping @Sendable () -> Bool) {
        self.configuration = configuration; self.publisher = publisher; self.logger = logger
        self.metrics = metrics; self.health = health; self.stopRequested = stopRequested
    }

    func wake() { wakeSignal.signal() }

    func runSession() throws {
        let reader = try PGConnection.connectBlocking(configuration.databaseURL, applicationName: configuration.applicationName)
        let listener = try PGConnection.connectBlocking(configuration.databaseURL, applicationName: "\(configuration.applicationName)-listen")
        let lockKey = Int64(truncatingIfNeeded: configuration.slotName.utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 })
        guard try reader.queryBlocking("SELECT pg_try_advisory_lock($1) AS got", [.int(lockKey)]).single().bool("got") else {
            throw RelayError(.slotInUse, "Another relay reads slot \"\(configuration.slotName)\" in notify mode; waiting as a standby.",
                             fix: "nothing: this relay takes over when the active one stops.", halting: false)
        }
        let preflight = SlotPreflight(slot: configuration.slotName, publication: configuration.publication,
                                      createIfMissing: configuration.createSlot)
        let slot = try preflight.run(lastConfirmed: lastConfirmed, execute: { try reader.queryBlocking($0) }, createSlot: {
            do {
                try reader.queryBlocking("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(configuration.slotName)])
                logger.notice("created replication slot", metadata: ["slot": "\(configuration.slotName)"])
            } catch let error as PGError where error.sqlState == "42710" {}
        })
        if let pid = slot.activePID {
            throw RelayError(.slotInUse, "Replication slot \"\(configuration.slotName)\" is in use by process \(pid); waiting as a standby.",
                             fix: "nothing: this relay takes over when the active one stops.", halting: false)
        }
        if try !NotifyTrigger.isInstalledBlocking(on: reader) {
            logger.warning("notify capture: the outbox trigger is not installed; relying on the fallback timer",
                           metadata: ["fix": "run `outbox-relay migrate --capture notify` as the table owner"])
        }
        try listener.queryBlocking("LISTEN \(quoteIdentifier(configuration.notifyChannel))")
        publisher.reset(confirmed: slot.confirmedFlush)
        lastConfirmed = slot.confirmedFlush
        health.set(.streaming, "notify mode, slot \(configuration.slotName)")
        metrics.streaming.record(1)
        defer { metrics.streaming.record(0) }
        logger.info("notify capture running", metadata: ["slot": "\(configuration.slotName)", "channel": "\(configuration.notifyChannel)"])

        var decoder = PGOutputDecoder()
        var extractor = OutboxRowExtractor()
        while !stopRequested() {
            if let reason = publisher.pendingRestart { throw SessionRestart(reason: reason) }
            try drainSlot(reader, decoder: &decoder, extractor: &extractor)
            health.noteProgress(inFlight: publisher.inFlightEvents)
            if stopRequested() { break }
            _ = try listener.waitForNotificationsBlocking(timeout: configuration.notifyFallbackInterval, wakeFD: wakeSignal.fd)
            wakeSignal.drain()
        }
        health.set(.draining)
        _ = publisher.drain(timeout: configuration.drainTimeout)
        try advance(reader, to: publisher.confirmableLSN)
        logger.notice("notify capture stopped", metadata: ["confirmed": "\(lastConfirmed.map { "\($0)" } ?? "-")"])
    }

    /// Reads everything committed up to now, publishes it, waits for the acks, advances.
    private func drainSlot(_ conn: PGConnection, decoder: inout PGOutputDecoder, extractor: inout OutboxRowExtractor) throws {
        let upTo = try conn.queryBlocking("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
        let whileBlocked: () throws -> Void = { [self] in
            health.noteProgress(inFlight: publisher.inFlightEvents)
        }
        var sawChanges = false
        try conn.transactionBlocking { conn in
            try conn.queryBlocking("""
                DECLARE outbox_changes NO SCROLL CURSOR FOR
                SELECT data FROM pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, NULL,
                    'proto_version', '1', 'publication_names', $3)
                """, [.text(configuration.slotName), .text(upTo.description), .text(configuration.publication)])
            while true {
                let rows = try conn.queryBlocking("FETCH \(Self.fetchSize) FROM outbox_changes").rows
                if rows.isEmpty { break }
                sawChanges = true
                for row in rows {
                    let bytes = try row.bytea("data")
                    try bytes.withUnsafeBytes { raw in
                        switch try decoder.decode(raw) {
                        case .begin(let begin):
                            publisher.beginTransaction(commitTime: begin.commitTime)
                        case .insert(let relationID, _):
                            guard let relation = decoder.relations[relationID] else {
                                throw PGOutputError(.unknownRelation, "Insert for relation \(relationID) before its Relation message")
                            }
                            guard extractor.isOutbox(relation) else { return }
                            do {
                                let outboxRow = try extractor.view(relation: relation, tuple: decoder.newTuple, bytes: raw)
                                try publisher.publish(outboxRow, whileBlocked: whileBlocked)
                            } catch let malformed as MalformedOutboxRow {
                                try publisher.publishMalformed(malformed, whileBlocked: whileBlocked)
                            }
                        case .commit(let commit):
                            publisher.commitTransaction(endLSN: commit.endLSN)
                        default:
                            break
                        }
                    }
                }
            }
            try conn.queryBlocking("CLOSE outbox_changes")
        }
        // Everything committed before `upTo` is now in flight or done; once acknowledged,
        // the slot may move to `upTo` even when there were no outbox rows (quiet outbox).
        while !publisher.drain(timeout: .seconds(1)) {
            if let reason = publisher.pendingRestart { throw SessionRestart(reason: reason) }
            if stopRequested() { return }  // the final advance covers what was acknowledged
            health.noteProgress(inFlight: publisher.inFlightEvents)
        }
        if !sawChanges { publisher.observeServerWALEnd(upTo) }
        try advance(conn, to: max(publisher.confirmableLSN, sawChanges ? .invalid : upTo))
    }

    private func advance(_ conn: PGConnection, to lsn: LSN) throws {
        guard lsn > (lastConfirmed ?? .invalid) else { return }
        try conn.queryBlocking("SELECT pg_replication_slot_advance($1, $2::pg_lsn)", [.text(configuration.slotName), .text(lsn.description)])
        lastConfirmed = lsn
        metrics.confirmedLSN.record(Double(lsn.rawValue))
    }
}
