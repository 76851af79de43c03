import KafkaClient
import PGOutput
import PostgresClient
import RelayCore
import Schema

/// Publishes, in outbox_id order per table, every outbox row still INIT that a snapshot sees (less
/// those a delivered snapshot shows were delivered, for `slot reset`): the
/// snapshot exported when a slot is created, which sees exactly the transactions committed
/// before the slot begins. The new slot never streams those rows, so they are published
/// first, before anything newer (per-key order across the slot's start). Used on the very
/// first start in stream mode and by `outbox-relay slot reset`. Blocking: dedicated threads.
struct GapPublisher {
    let router: TopicRouter
    /// The captured tables, published one after the other in the one snapshot.
    var tables: [OutboxTable] = [.default]
    var headerStyle = HeaderStyle.default
    /// Sharded capture: only this shard's rows (its slot never streams the others').
    var shard: ShardSpec? = nil
    /// `slot reset`: the record's delivered snapshot; INIT rows it sees were delivered by
    /// the old slot and are left out (`SlotDelivered`). nil: every INIT row goes out.
    var deliveredSnapshot: String? = nil
    static let batchSize = 1_000

    struct Outcome: Equatable {
        var published = 0
        /// INIT rows whose topic the router refuses: left for the sweeper to dead-letter.
        var unroutable = 0
        /// INIT rows left out because the delivered snapshot sees them.
        var alreadyDelivered = 0
    }

    /// A connection inside a REPEATABLE READ transaction that imported `snapshot`; import it
    /// before the exporting connection runs its next command.
    static func importSnapshot(_ snapshot: String, dsn: String, applicationName: String) throws -> PGConnection {
        let connection = try PGConnection.connectBlocking(dsn, applicationName: applicationName)
        try connection.queryBlocking("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try connection.queryBlocking("SET TRANSACTION SNAPSHOT \(quoteLiteral(snapshot))")
        return connection
    }

    /// Publishes the INIT rows `connection`'s snapshot sees and ends its transaction.
    /// Throws when a record could not be delivered, or when `giveUp` said so.
    func publish(from connection: PGConnection, producer: KafkaProducer, giveUp: () -> Bool = { false }) throws -> Outcome {
        var outcome = Outcome()
        for table in tables {
            try publish(table, from: connection, producer: producer, giveUp: giveUp, into: &outcome)
        }
        try connection.queryBlocking("COMMIT")
        return outcome
    }

    private func publish(_ table: OutboxTable, from connection: PGConnection, producer: KafkaProducer,
                         giveUp: () -> Bool, into outcome: inout Outcome) throws {
        let initRows = "FROM \(table.sql) WHERE status = 'INIT'" + (shard.map { " AND " + $0.predicateSQL() } ?? "")
        var selected = initRows
        if let deliveredSnapshot {
            let mayBeMissing = SlotDelivered.mayBeMissingPredicate(snapshot: deliveredSnapshot)
            outcome.alreadyDelivered += try connection.queryBlocking("SELECT count(*) AS n \(initRows) AND NOT \(mayBeMissing)").single().int("n")
            selected += " AND " + mayBeMissing
        }
        try connection.queryBlocking("""
            DECLARE gap NO SCROLL CURSOR FOR
            SELECT outbox_id, topic, mq_key, type, payload::text AS payload, created_at::text AS created_at, trace_parent
            \(selected) ORDER BY outbox_id
            """)
        while true {
            let rows = try connection.queryBlocking("FETCH \(Self.batchSize) FROM gap").rows
            if rows.isEmpty { break }
            var records: [OutgoingRecord] = []
            for row in rows {
                let row = try OutboxRow(stored: row, table: table)
                guard case .publish(let topic) = router.route(row.topic) else {
                    outcome.unroutable += 1
                    continue
                }
                // No `outbox-lsn`: these rows committed before the slot.
                records.append(row.record(on: topic, style: headerStyle))
            }
            for case .failure(let error) in producer.sendInOrderBlocking(records, giveUp: giveUp) {
                throw GapNotPublished(error: error)
            }
            outcome.published += records.count
        }
        try connection.queryBlocking("CLOSE gap")
    }
}

/// Some rows of the gap did not reach Kafka (the broker is down, or a stop interrupted).
struct GapNotPublished: Error, CustomStringConvertible {
    var error: KafkaError
    var description: String { "the rows committed before the slot could not all be published: \(error)" }
}
