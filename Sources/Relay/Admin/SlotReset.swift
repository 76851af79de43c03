import KafkaClient
public import Logging
public import PGOutput
import PostgresClient
import RelayCore
import Schema
import Threading

/// `outbox-relay slot reset`: the explicit operator command after a slot was lost,
/// invalidated or moved (invariant 8). With every relay of the slot stopped, it drops what
/// is left of the slot, creates it anew with an exported snapshot, re-sends the outbox
/// rows still INIT that are visible in that snapshot (the rows committed before the new
/// slot begins, which the new slot will never stream), in outbox_id order, and only then
/// records the new slot. Relays started afterwards stream what came after, so the gap is
/// delivered before anything newer.
///
/// Only rows that may be missing go out: those the record's delivered snapshot does not
/// see (`SlotDelivered`). What the old slot delivered up to its last record writes (at
/// most ~100 ms old under load) is not sent again, nor are old INIT rows of topics whose
/// consumers never write status back. Without a delivered snapshot (a record older than
/// migration 0008, or none) every INIT row goes out, and the report says so. Consumers
/// absorb the duplicates either way. Running it twice is harmless.
public enum SlotReset {
    public struct Report: Sendable, Equatable {
        public var slot: String
        /// Where the new slot begins.
        public var lsn: LSN
        /// What the record said before (nil: there was no record).
        public var previouslyRecorded: LSN?
        /// INIT rows committed before the new slot, re-sent.
        public var resent: Int
        /// INIT rows whose topic the router refuses: left for the sweeper to dead-letter.
        public var unroutable: Int
        /// INIT rows committed before the new slot that the record shows were delivered: not
        /// re-sent. nil: the record knew no delivered snapshot, so every INIT row was re-sent.
        public var alreadyDelivered: Int?
    }

    public static func run(configuration: RelayConfiguration, logger: Logger) async throws -> Report {
        try configuration.validate()
        let producer = try KafkaProducer(configuration: configuration.kafka, logger: logger, onDelivery: { _ in })
        do {
            let report = try await reset(configuration: configuration, producer: producer, logger: logger)
            await producer.close(timeout: .seconds(5))
            return report
        } catch {
            await producer.close(timeout: .zero)
            throw error
        }
    }

    private static func reset(configuration: RelayConfiguration, producer: KafkaProducer, logger: Logger) async throws -> Report {
        let slot = configuration.slotName
        let store = SlotRecordStore(slot: slot)
        let reader = try await PGConnection.connect(configuration.databaseURL, applicationName: "\(configuration.applicationName)-slot-reset")
        let (previouslyRecorded, deliveredSnapshot) = try await runBlocking {
            (try store.read { try reader.queryBlocking($0) }, try store.deliveredSnapshot { try reader.queryBlocking($0) })
        }
        if let pid = try await reader.query("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", [.text(slot)])
            .rows.first?.optionalInt64("active_pid") {
            throw RelayError(.slotInUse, "Replication slot \"\(slot)\" is in use by process \(pid): a relay still runs on it.",
                             fix: "stop every relay of slot \(slot) (active and standby), then run `outbox-relay slot reset` again.")
        }
        // A replication connection: CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT gives a
        // snapshot that sees exactly the transactions committed before the slot's start.
        let replication = try await runBlocking {
            try ReplicationConnection(dsn: configuration.databaseURL, applicationName: "\(configuration.applicationName)-slot-reset")
        }
        let (lsn, snapshot) = try await runBlocking { () throws -> (LSN, String) in
            _ = try replication.execute("""
                SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = \(quoteLiteral(slot))
                """)
            let failover = FailoverSlot.supported(serverMajor: try FailoverSlot.serverMajor { try replication.execute($0) })
            let created = try SlotCreationWatch(configuration, logger: logger).run(creatorPID: replication.backendPID) {
                try replication.execute(FailoverSlot.createReplicationCommand(slot: slot, failover: failover)).single()
            }
            return (try created.lsn("consistent_point"), try created.string("snapshot_name"))
        }
        logger.notice("slot reset: recreated the slot; re-sending the rows committed before it", metadata: ["slot": "\(slot)", "lsn": "\(lsn)"])
        let outcome: GapPublisher.Outcome
        do {
            outcome = try await runBlocking {
                let reader = try GapPublisher.importSnapshot(snapshot, dsn: configuration.databaseURL,
                                                             applicationName: "\(configuration.applicationName)-slot-reset")
                _ = replication  // the export lives until this connection's next command: keep it until imported
                let gap = GapPublisher(router: configuration.router, tables: configuration.tables, headerStyle: configuration.headerStyle, shard: configuration.shard,
                                       deliveredSnapshot: deliveredSnapshot)
                let outcome = try gap.publish(from: reader, producer: producer)
                try store.record(createdAt: lsn, change: "reset", replace: true, clearsPending: deliveredSnapshot != nil) { try reader.queryBlocking($0) }
                return outcome
            }
        } catch let error as GapNotPublished {
            throw RelayError(.invalidConfiguration, "slot reset could not re-send the gap to Kafka: \(error.error).",
                             fix: "make the brokers reachable and run `outbox-relay slot reset` again (it starts over; consumers absorb the duplicates).")
        }
        let report = Report(slot: slot, lsn: lsn, previouslyRecorded: previouslyRecorded, resent: outcome.published, unroutable: outcome.unroutable,
                            alreadyDelivered: deliveredSnapshot == nil ? nil : outcome.alreadyDelivered)
        logger.notice("slot reset done", metadata: ["slot": "\(slot)", "lsn": "\(lsn)", "resent": "\(report.resent)", "unroutable": "\(report.unroutable)",
                                                    "already_delivered": "\(report.alreadyDelivered.map(String.init) ?? "unknown: every INIT row re-sent")"])
        return report
    }
}
