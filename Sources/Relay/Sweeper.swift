import Foundation
public import Logging
import PostgresClient
public import RelayCore

/// Re-sends rows still INIT after `minimumAge` (a publish was lost, or nobody consumed
/// it), with exponential backoff per row, and marks them DEAD (plus a dead-letter copy)
/// after `maxAttempts`. Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several relays
/// sweep at once without sending the same row twice in a round. Also deletes old
/// COMPLETE rows in small batches when retention is configured.
public final class Sweeper: Sendable {
    public let policy: SweeperPolicy
    /// Delete COMPLETE rows older than this; nil keeps them forever.
    public let retention: Duration?
    public let retentionBatch: Int
    private let configuration: RelayConfiguration
    private let logger: Logger
    private let metrics: RelayMetrics

    init(policy: SweeperPolicy, retention: Duration?, retentionBatch: Int = 1_000, configuration: RelayConfiguration,
         logger: Logger, metrics: RelayMetrics) {
        self.policy = policy; self.retention = retention; self.retentionBatch = retentionBatch
        self.configuration = configuration; self.logger = logger; self.metrics = metrics
    }

    public struct RoundResult: Sendable, Equatable {
        public var resent: [Int64] = []
        public var dead: [Int64] = []
        public var retained = 0
    }

    /// The claim query. The partial index on INIT rows by created_at serves it, however
    /// large the table; see `explain` and the README for the plan.
    static let claimSQL = """
        SELECT outbox_id, topic, mq_key, type, payload::text AS payload, created_at::text AS created_at,
               trace_parent, attempts
        FROM outbox
        WHERE status = 'INIT'
          AND created_at < now() - make_interval(secs => $1)
          AND (last_sent_at IS NULL
               OR (last_sent_at <= now() - make_interval(secs => LEAST($3::float8, $2::float8 * power(2, GREATEST(attempts - 1, 0))))
                   AND last_sent_at < $5::timestamptz))
        ORDER BY created_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED
        """

    /// `roundStart` keeps one round from sending a row twice, however short the backoff.
    func claimParameters(roundStart: String) -> [PGValue] {
        [.text(String(policy.minimumAge.inSeconds)), .text(String(policy.backoffBase.inSeconds)),
         .text(String(policy.backoffCap.inSeconds)), .int(policy.batchSize), .text(roundStart)]
    }

    /// One round: claim a batch, send or dead-letter each row, record the attempts, commit.
    /// Repeats while full batches come back, so a backlog drains within one interval.
    func sweep(on connection: PGConnection, publisher: Publisher) async throws -> RoundResult {
        var total = RoundResult()
        let roundStart = try await connection.query("SELECT clock_timestamp()::text AS t").single().string("t")
        while true {
            let batch = try await connection.transaction { conn in
                try await sweepBatch(conn, publisher: publisher, roundStart: roundStart)
            }
            total.resent += batch.resent
            total.dead += batch.dead
            if batch.resent.count + batch.dead.count < policy.batchSize { break }
        }
        if let retention { total.retained = try await deleteExpired(on: connection, olderThan: retention) }
        return total
    }

    private func sweepBatch(_ conn: PGConnection, publisher: Publisher, roundStart: String) async throws -> RoundResult {
        let rows = try await conn.query(Self.claimSQL, claimParameters(roundStart: roundStart)).rows
        guard !rows.isEmpty else { return RoundResult() }
        var result = RoundResult()
        var outgoing: [OutgoingMessage] = [], outgoingIDs: [Int64] = []
        var dead: [(Int64, String, OutgoingMessage)] = []
        for row in rows {
            let id = try row.int64("outbox_id"), attempts = try row.int("attempts")
            let topic = try row.string("topic")
            var headers: [(String, [UInt8])] = [
                ("outbox-id", Array(String(id).utf8)), ("outbox-type", Array(try row.string("type").utf8)),
                ("outbox-created-at", Array(try row.string("created_at").utf8)),
                ("outbox-resend-attempt", Array(String(attempts + 1).utf8)),
            ]
            if let trace = try row.optionalString("trace_parent"), !trace.isEmpty { headers.append(("traceparent", Array(trace.utf8))) }
            let message = OutgoingMessage(topic: topic, key: Array(try row.string("mq_key").utf8),
                                          value: Array(try row.string("payload").utf8), headers: headers)
            if policy.decide(attempts: attempts) == .deadLetter {
                dead.append((id, "\(DeadLetterReason.maxAttemptsExceeded.rawValue): not COMPLETE after \(attempts) resends", message))
                continue
            }
            switch configuration.router.route(topic) {
            case .publish(let target):
                var routed = message
                routed.topic = target
                outgoing.append(routed)
                outgoingIDs.append(id)
            case .deadLetter(let reason, let detail):
                dead.append((id, "\(reason.rawValue): \(detail)", message))
            }
        }
        let errors = await publisher.sendAll(outgoing)
        var sent: [Int64] = []
        for (index, error) in errors.enumerated() {
            if let error {
                if case .deadLetter(let reason) = Publisher.classify(error) {
                    dead.append((outgoingIDs[index], "\(reason.rawValue): \(error.name) \(error.message)", outgoing[index]))
                } else {
                    logger.warning("sweeper resend failed; the row stays INIT for the next round", metadata: [
                        "outbox_id": "\(outgoingIDs[index])", "error": "\(error)"])
                }
            } else {
                sent.append(outgoingIDs[index])
            }
        }
        if !sent.isEmpty {
            try await conn.query("""
                UPDATE outbox SET attempts = attempts + 1, last_sent_at = now()
                WHERE outbox_id = ANY($1::bigint[]) AND status = 'INIT'
                """, [.text("{" + sent.map(String.init).joined(separator: ",") + "}")])
            metrics.sweeperResends.increment(by: sent.count)
            result.resent = sent
        }
        for (id, reason, message) in dead {
            var headers = message.headers
            headers.append(("outbox-dlq-reason", Array(reason.prefix { $0 != ":" }.utf8)))
            headers.append(("outbox-dlq-error", Array(reason.utf8.prefix(1_000))))
            headers.append(("outbox-dlq-original-topic", Array(TopicRouter.printable(message.topic, limit: 249).utf8)))
            let value = message.value.count > DeadLetterWorker.maxCopiedValueBytes ? [] : message.value
            let errors = await publisher.sendAll([OutgoingMessage(topic: configuration.router.deadLetterTopic, key: message.key,
                                                                  value: value, headers: headers)])
            if let error = errors[0] {
                // Without the copy the row must not become DEAD: it stays INIT for the next round.
                logger.error("dead-letter copy failed; the row stays INIT", metadata: ["outbox_id": "\(id)", "error": "\(error)"])
                continue
            }
            try await conn.query("UPDATE outbox SET status = 'DEAD', last_error = $2, last_sent_at = now() WHERE outbox_id = $1 AND status = 'INIT'",
                                 [.int(id), .text(String(reason.prefix(2_000)))])
            metrics.deadLettered(String(reason.prefix { $0 != ":" })).increment()
            logger.warning("row marked DEAD", metadata: ["outbox_id": "\(id)", "reason": "\(reason.prefix(200))"])
            result.dead.append(id)
        }
        return result
    }

    /// Deletes COMPLETE rows older than `age`, `retentionBatch` at a time, each batch its
    /// own short transaction so no long lock is ever held.
    func deleteExpired(on connection: PGConnection, olderThan age: Duration) async throws -> Int {
        var deleted = 0
        while true {
            let result = try await connection.query("""
                DELETE FROM outbox WHERE outbox_id IN (
                    SELECT outbox_id FROM outbox
                    WHERE status = 'COMPLETE' AND created_at < now() - make_interval(secs => $1)
                    ORDER BY created_at LIMIT $2)
                """, [.text(String(age.inSeconds)), .int(retentionBatch)])
            deleted += result.affectedRows
            metrics.retentionDeleted.increment(by: result.affectedRows)
            if result.affectedRows < retentionBatch { return deleted }
        }
    }

    /// EXPLAIN of the claim query, for the docs and the efficiency test.
    func explain(on connection: PGConnection) async throws -> String {
        let plan = try await connection.query("EXPLAIN " + Self.claimSQL.replacingOccurrences(of: "$1", with: "10")
            .replacingOccurrences(of: "$2::float8", with: "10::float8").replacingOccurrences(of: "$3::float8", with: "3600::float8")
            .replacingOccurrences(of: "$4", with: "500").replacingOccurrences(of: "$5::timestamptz", with: "now()"))
        return try plan.rows.map { try $0.string("QUERY PLAN") }.joined(separator: "\n")
    }

    /// Runs rounds every `policy.interval` until cancelled. Errors are logged and retried
    /// next round: the sweeper is a safety net and must not stop the relay.
    func run(publisher: Publisher) async {
        var connection: PGConnection?
        while !Task.isCancelled {
            do {
                if connection == nil || connection?.isHealthy == false {
                    connection = try await PGConnection.connect(configuration.databaseURL, applicationName: "\(configuration.applicationName)-sweeper")
                }
                let result = try await sweep(on: connection!, publisher: publisher)
                if !result.resent.isEmpty || !result.dead.isEmpty || result.retained > 0 {
                    logger.info("sweep", metadata: ["resent": "\(result.resent.count)", "dead": "\(result.dead.count)", "retention_deleted": "\(result.retained)"])
                }
            } catch {
                logger.error("sweep failed; retrying next round", metadata: ["error": "\(error)"])
                connection = nil
            }
            try? await Task.sleep(for: policy.interval)
        }
    }
}
