import KafkaClient
public import Logging
import PGOutput
import PostgresClient
public import RelayCore
import Schema

/// What an operator's re-publishing run takes and how far it may go (`redrive`, `replay`).
public struct RepublishOptions: Sendable {
    public var selection: RowSelection
    /// Where to start (`--after-id`), how many rows at most (`--limit`), the batch size.
    public var cursor: RepublishCursor
    /// How long a batch holding INIT rows waits for the relay's stream (`StreamHorizon`).
    public var streamWait: Duration
    /// How long a record may wait for Kafka before the run stops with its resume point
    /// (librdkafka's `message.timeout.ms` for this command's producer only).
    public var sendTimeout: Duration

    public static let defaultStreamWait: Duration = .seconds(60)
    public static let defaultSendTimeout: Duration = .seconds(60)

    public init(selection: RowSelection, cursor: RepublishCursor, streamWait: Duration = RepublishOptions.defaultStreamWait,
                sendTimeout: Duration = RepublishOptions.defaultSendTimeout) {
        self.selection = selection
        self.cursor = cursor
        self.streamWait = streamWait
        self.sendTimeout = sendTimeout
    }
}

/// One acknowledged batch, for the progress line the command prints.
public struct RepublishProgress: Sendable, Equatable {
    public var batch: Int
    /// Rows the batch read, and the id range they span.
    public var rows: Int
    public var firstID: Int64
    public var lastID: Int64
    public var published: Int
    /// Rows left as they were because their route or size refuses them, by reason code.
    public var refused: [String: Int]
    /// Rows whose status the command changed (redrive's DEAD → INIT).
    public var changed: Int
    /// Rows settled in this run so far, and the id to resume after.
    public var done: Int
    public var resumeAfter: Int64
}

/// A run that ended: what it did, and where the next run would go on.
public struct RepublishSummary: Sendable, Equatable {
    public var batches = 0
    public var published = 0
    public var refused: [String: Int] = [:]
    public var changed = 0
    public var done = 0
    public var resumeAfter: Int64
    /// True when `--limit` ended the run (rows may remain): resume with `--after-id`.
    public var limitReached = false
}

/// A run that stopped before its selection was done: one cause, one fix, and the id to
/// resume after (every row up to it is settled).
public struct RepublishStopped: Error, CustomStringConvertible {
    public var resumeAfter: Int64
    public var cause: String
    public var fix: String
    public var description: String {
        "\(cause). Rows up to outbox_id \(resumeAfter) are done. Fix: \(fix), then run the same command with --after-id \(resumeAfter) to go on."
    }
}

/// The batch loop `redrive` and `replay` share. Reads the selection in `outbox_id` order, a
/// batch at a time; sends each batch in that order (so each key's rows reach their
/// partition in order) and waits for every acknowledgement; then lets the command record
/// what counts as done (`settle`), and only then reads the next batch. No transaction is
/// open and no row is locked while Kafka is waited for: the read is one statement, and the
/// command's write afterwards is another, guarded by the status it expects.
struct RowRepublisher {
    let configuration: RelayConfiguration
    let options: RepublishOptions
    let logger: Logger
    /// Marks each record before it is sent (replay's header).
    var mark: (inout OutgoingRecord) -> Void = { _ in }
    /// Records the published ids of an acknowledged batch; returns the rows it changed.
    var settle: ([Int64], PGConnection) async throws -> Int = { _, _ in 0 }

    /// The relay's producer settings, except that a message not delivered within
    /// `sendTimeout` fails (the relay itself never gives up: `message.timeout.ms` 0, and its
    /// settings refuse any other value), so that an outage stops the run with its resume
    /// point instead of hanging it. The batch settlement keeps per-key order across that.
    static func kafka(_ configuration: RelayConfiguration, sendTimeout: Duration) -> KafkaConfiguration {
        var kafka = configuration.kafka
        kafka.properties["message.timeout.ms"] = String(max(1, sendTimeout.components.seconds * 1_000 + sendTimeout.components.attoseconds / 1_000_000_000_000_000))
        return kafka
    }

    func run(command: String, progress: (RepublishProgress) -> Void) async throws -> RepublishSummary {
        let connection = try await PGConnection.connect(configuration.databaseURL, applicationName: "\(configuration.applicationName)-\(command)")
        let producer = try KafkaProducer(configuration: Self.kafka(configuration, sendTimeout: options.sendTimeout), logger: logger, onDelivery: { _ in })
        do {
            let summary = try await batches(on: connection, producer: producer, progress: progress)
            await producer.close(timeout: .seconds(5))
            return summary
        } catch {
            await producer.close(timeout: .zero)
            throw error
        }
    }

    private func batches(on connection: PGConnection, producer: KafkaProducer,
                         progress: (RepublishProgress) -> Void) async throws -> RepublishSummary {
        var cursor = options.cursor
        var summary = RepublishSummary(resumeAfter: cursor.afterID)
        var horizon: StreamHorizon?
        do {
            while let size = cursor.nextBatchSize {
                guard let batch = try await batch(after: cursor.afterID, size: size, on: connection, producer: producer, horizon: &horizon) else {
                    return summary
                }
                let settlement = batch.settlement
                cursor.advance(to: settlement.resumeAfter, rows: settlement.settled)
                summary.batches += 1
                summary.published += settlement.published.count
                summary.changed += batch.changed
                summary.done = cursor.done
                summary.resumeAfter = cursor.afterID
                for (reason, ids) in settlement.refused { summary.refused[reason, default: 0] += ids.count }
                progress(RepublishProgress(batch: summary.batches, rows: batch.ids.count, firstID: batch.ids.first!, lastID: batch.ids.last!,
                                           published: settlement.published.count, refused: settlement.refused.mapValues(\.count),
                                           changed: batch.changed, done: cursor.done, resumeAfter: cursor.afterID))
                if let failure = settlement.failure {
                    throw RepublishStopped(resumeAfter: cursor.afterID, cause: "Kafka did not take a record: \(failure)",
                                           fix: "make the brokers reachable and writable for this client (`outbox-relay status`, the broker's ACLs)")
                }
                if batch.ids.count < size { return summary }
            }
        } catch let error as PGError {
            // The database failed between batches: what was settled stays settled.
            throw RepublishStopped(resumeAfter: cursor.afterID, cause: "\(error)",
                                   fix: "check that PostgreSQL is reachable and the outbox migrated (`outbox-relay status`)")
        }
        summary.limitReached = true
        return summary
    }

    /// One batch: read the next `size` selected rows after `afterID` (nil: none left), wait
    /// for the stream if any is INIT, send them, and let the command settle the published ones.
    private func batch(after afterID: Int64, size: Int, on connection: PGConnection, producer: KafkaProducer,
                       horizon: inout StreamHorizon?) async throws -> (ids: [Int64], settlement: BatchSettlement, changed: Int)? {
        let statement = options.selection.batchStatement(afterID: afterID, limit: size)
        let result = try await connection.query(statement.sql, statement.parameters.map(PGValue.text))
        guard let first = result.rows.first else { return nil }
        let rows = try result.rows.map { try OutboxRow(stored: $0, table: options.selection.table) }
        if BatchSettlement.mustWaitForStream(statuses: try result.rows.map { try $0.string("status") }) {
            if horizon == nil { horizon = try await StreamHorizon.resolve(configuration: configuration, on: connection) }
            try await horizon!.wait(past: try first.lsn("watermark"), timeout: options.streamWait, resumeAfter: afterID, on: connection)
        }
        let outcomes = await send(rows, producer: producer)
        let settlement = BatchSettlement.settle(previous: afterID, rows: zip(rows, outcomes).map { (id: $0.id, outcome: $1) })
        return (rows.map(\.id), settlement, try await settle(settlement.published, connection))
    }

    /// Routes and sends `rows` in order, waiting for every report; one outcome per row.
    private func send(_ rows: [OutboxRow], producer: KafkaProducer) async -> [RowSendOutcome] {
        var outcomes = [RowSendOutcome](repeating: .sent, count: rows.count)
        var outgoing: [(index: Int, record: OutgoingRecord)] = []
        for (index, row) in rows.enumerated() {
            switch configuration.router.route(row.topic) {
            case .publish(let topic):
                var record = row.record(on: topic, style: configuration.headerStyle)
                mark(&record)
                outgoing.append((index, record))
            case .deadLetter(let reason, _):
                outcomes[index] = .refused(reason.rawValue)
            }
        }
        for ((index, _), result) in zip(outgoing, await producer.sendInOrder(outgoing.map(\.record))) {
            guard case .failure(let error) = result else { continue }
            if case .row(let reason) = DeliveryFault.classify(errorName: error.name, stage: .produce) {
                outcomes[index] = .refused(reason.rawValue)
            } else {
                outcomes[index] = .failed("\(error.name): \(error.message)")
            }
        }
        return outcomes
    }
}
