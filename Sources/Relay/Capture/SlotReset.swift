import KafkaClient
public import Logging
public import PGOutput
import PostgresClient
import RelayCore
import Schema

/// `outbox-relay slot reset`: the explicit operator command after a slot was lost,
/// invalidated or moved (invariant 8). With every relay of the slot stopped, it drops what
/// is left of the slot, creates it anew with an exported snapshot, re-sends every outbox
/// row still INIT that is visible in that snapshot (exactly the rows committed before the
/// new slot begins, which the new slot will never stream), in outbox_id order, and only
/// then records the new slot. Relays started afterwards stream what came after, so the gap
/// is delivered before anything newer. Rows the old slot had already published are sent
/// again: consumers absorb duplicates. Running it twice is harmless.
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
    }

    /// Rows read and sent per batch.
    static let batchSize = 1_000

    public static func run(configuration: RelayConfiguration, logger: Logger) async throws -> Report {
        try configuration.validate()
        let producer = try KafkaProducer(configuration: configuration.kafka, logger: logger, onDelivery: { _ in })
        defer { producer.close(timeout: .seconds(5)) }
        let slot = configuration.slotName
        let store = SlotRecordStore(slot: slot)
        let reader = try await PGConnection.connect(configuration.databaseURL, applicationName: "\(configuration.applicationName)-slot-reset")
        let previouslyRecorded = try await runBlocking { try store.read { try reader.queryBlocking($0) } }
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
            let created = try replication.execute("CREATE_REPLICATION_SLOT \(quoteIdentifier(slot)) LOGICAL pgoutput EXPORT_SNAPSHOT").single()
            return (try created.lsn("consistent_point"), try created.string("snapshot_name"))
        }
        logger.notice("slot reset: recreated the slot; re-sending the rows committed before it", metadata: ["slot": "\(slot)", "lsn": "\(lsn)"])
        var report = Report(slot: slot, lsn: lsn, previouslyRecorded: previouslyRecorded, resent: 0, unroutable: 0)
        try await reader.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try await reader.query("SET TRANSACTION SNAPSHOT \(quoteLiteral(snapshot))")
        // Imported: the exporting connection may go on (and is done with).
        try await reader.query("""
            DECLARE gap NO SCROLL CURSOR FOR
            SELECT outbox_id, topic, mq_key, type, payload::text AS payload, created_at::text AS created_at, trace_parent
            FROM outbox WHERE status = 'INIT' ORDER BY outbox_id
            """)
        while true {
            let rows = try await reader.query("FETCH \(batchSize) FROM gap").rows
            if rows.isEmpty { break }
            var records: [OutgoingRecord] = []
            for row in rows {
                typealias H = RecordContract.Header
                let id = try row.int64("outbox_id")
                guard case .publish(let topic) = configuration.router.route(try row.string("topic")) else {
                    report.unroutable += 1
                    continue
                }
                var headers: [(String, [UInt8])] = [
                    (H.outboxID, Array(String(id).utf8)), (H.type, Array(try row.string("type").utf8)),
                    (H.createdAt, Array(try row.string("created_at").utf8)),
                ]
                if let trace = try row.optionalString("trace_parent"), !trace.isEmpty { headers.append((H.traceParent, Array(trace.utf8))) }
                records.append(OutgoingRecord(topic: topic, key: Array(try row.string("mq_key").utf8),
                                              value: Array(try row.string("payload").utf8), headers: headers))
            }
            for case .failure(let error) in await producer.sendInOrder(records) {
                throw RelayError(.invalidConfiguration, "slot reset could not re-send the gap to Kafka: \(error).",
                                 fix: "make the brokers reachable and run `outbox-relay slot reset` again (it starts over; consumers absorb the duplicates).")
            }
            report.resent += records.count
        }
        try await reader.query("COMMIT")
        try await runBlocking { try store.record(createdAt: lsn, change: "reset", replace: true) { try reader.queryBlocking($0) } }
        _ = replication  // held until the snapshot was imported and read
        logger.notice("slot reset done", metadata: ["slot": "\(slot)", "lsn": "\(lsn)", "resent": "\(report.resent)", "unroutable": "\(report.unroutable)"])
        return report
    }
}
