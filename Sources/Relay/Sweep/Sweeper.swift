import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
public import RelayCore
import Schema

/// The safety net: re-sends rows that stay INIT long after the stream published them (a
/// consumer lost or skipped the message, or the topic's retention dropped it before it
/// was consumed), with exponential backoff per row, and marks them DEAD (plus a
/// dead-letter copy) after `maxAttempts` re-sends. When it may re-send is `SweepSchedule`'s
/// call: only after the relay confirmed past a WAL watermark taken in the same snapshot as
/// the candidates, so a re-send is always a later duplicate, never a first delivery
/// (invariant 7). Only the active, streaming relay sweeps.
///
/// No row lock is held across a Kafka wait: the snapshot takes none, the claim is one
/// short UPDATE (`FOR UPDATE SKIP LOCKED`, so several relays never claim a row twice), the
/// sends happen outside any transaction, and the outcome is recorded in another short
/// statement. At most `batchSize` rows are re-sent per interval, so consumers that are
/// merely slow are not flooded. Also deletes old COMPLETE rows in small batches when
/// retention is configured.
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
    }

    /// The condition on a row being due: INIT, old enough, and past its backoff. The
    /// partial index on INIT rows by created_at serves it, however large the table.
    /// Sharded capture adds the shard's predicate: a shard's sweeper waits on its own
    /// stream's confirmation only, so touching another shard's key could re-send it before
    /// that shard's stream first delivered it (out of order).
    private var dueCondition: String {
        """
        status = 'INIT'
          AND created_at < now() - make_interval(secs => $1)
          AND (last_sent_at IS NULL
               OR last_sent_at <= now() - make_interval(secs => LEAST($3::float8, $2::float8 * power(2, GREATEST(attempts - 1, 0)))))
        """ + shardCondition
    }

    /// ` AND <shard predicate>` for a sharded relay, empty otherwise.
    private var shardCondition: String { configuration.shard.map { " AND " + $0.predicateSQL() } ?? "" }

    /// Candidates and the watermark in one statement, so in one snapshot: every candidate
    /// committed before `pg_current_wal_insert_lsn()` is evaluated. Takes no lock.
    var snapshotSQL: String {
        """
        SELECT pg_current_wal_insert_lsn()::text AS watermark,
               COALESCE(array_agg(outbox_id ORDER BY outbox_id)::text, '{}') AS ids
        FROM (SELECT outbox_id FROM outbox WHERE \(dueCondition) ORDER BY created_at LIMIT $4) candidates
        """
    }

    /// Claims the candidates still due, in one short statement: `last_sent_at` is the
    /// claim (a second sweeper's re-check finds the row not due), SKIP LOCKED passes over
    /// rows a consumer holds right now (they are being completed anyway).
    var claimSQL: String {
        """
        UPDATE outbox o SET last_sent_at = now()
        FROM (SELECT outbox_id FROM outbox WHERE outbox_id = ANY($5::bigint[]) AND \(dueCondition)
              ORDER BY outbox_id LIMIT $4 FOR UPDATE SKIP LOCKED) claimed
        WHERE o.outbox_id = claimed.outbox_id
        RETURNING o.outbox_id, o.topic, o.mq_key, o.type, o.payload::text AS payload, o.created_at::text AS created_at,
                  o.trace_parent, o.attempts
        """
    }

    private var dueParameters: [PGValue] {
        [.text(String(policy.minimumAge.inSeconds)), .text(String(policy.backoffBase.inSeconds)),
         .text(String(policy.backoffCap.inSeconds)), .int(policy.batchSize)]
    }

    /// Step 1 of a round: the candidates (at most one batch) and the watermark.
    func snapshot(on connection: PGConnection) async throws -> (ids: [Int64], watermark: LSN) {
        let row = try await connection.query(snapshotSQL, dueParameters).single()
        let text = try row.string("ids").dropFirst().dropLast()
        return (text.split(separator: ",").compactMap { Int64($0) }, try row.lsn("watermark"))
    }

    /// Step 3 of a round: claims `ids` still due, re-sends them in order (rows of one key
    /// one after another, in outbox_id order), dead-letters those out of attempts, and
    /// records the outcome. Call it only once the stream has published every id.
    func resend(_ ids: [Int64], on connection: PGConnection, producers: ProducerHolder) async throws -> RoundResult {
        guard !ids.isEmpty else { return RoundResult() }
        let claimed = try await connection.query(claimSQL, dueParameters + [.text("{" + ids.map(String.init).joined(separator: ",") + "}")])
            .rows.map { try ClaimedRow($0, style: configuration.headerStyle) }.sorted { $0.id < $1.id }
        var result = RoundResult()
        var outgoing: [(id: Int64, record: OutgoingRecord)] = []
        var dead: [DeadLetter] = []
        for row in claimed {
            if policy.decide(attempts: row.attempts) == .deadLetter {
                dead.append(DeadLetter(outboxID: row.id, reason: .maxAttemptsExceeded, detail: "not COMPLETE after \(row.attempts) resends", record: row.record))
                continue
            }
            switch configuration.router.route(row.record.topic) {
            case .publish(let target):
                var routed = row.record
                routed.topic = target
                outgoing.append((row.id, routed))
            case .deadLetter(let reason, let detail):
                dead.append(DeadLetter(outboxID: row.id, reason: reason, detail: detail, record: row.record))
            }
        }
        let outcomes = await producers.sendInOrder(outgoing.map(\.record))
        var sent: [Int64] = []
        for ((id, record), outcome) in zip(outgoing, outcomes) {
            switch outcome {
            case .success: sent.append(id)
            case .failure(let error):
                if case .row(let reason) = DeliveryFault.classify(errorName: error.name, stage: .produce) {
                    dead.append(DeadLetter(outboxID: id, reason: reason, detail: "\(error.name) \(error.message)", record: record))
                } else {
                    // Claimed (last_sent_at) but not sent: it is due again after its backoff.
                    logger.warning("sweeper resend failed; the row stays INIT for a later round", metadata: ["outbox_id": "\(id)", "error": "\(error)"])
                }
            }
        }
        if !sent.isEmpty {
            try await connection.query("UPDATE outbox SET attempts = attempts + 1 WHERE outbox_id = ANY($1::bigint[]) AND status = 'INIT'",
                                       [.text("{" + sent.map(String.init).joined(separator: ",") + "}")])
            metrics.sweeperResends.increment(by: sent.count)
            result.resent = sent
        }
        for letter in dead where try await deadLetter(letter, on: connection, producers: producers) {
            if let id = letter.outboxID { result.dead.append(id) }
        }
        return result
    }

    /// Copies the row to the dead-letter topic, then marks it DEAD. Without the copy it
    /// stays INIT for a later round.
    private func deadLetter(_ letter: DeadLetter, on connection: PGConnection, producers: ProducerHolder) async throws -> Bool {
        let id = letter.outboxID.map(String.init) ?? "?"
        if case .failure(let error) = await producers.sendInOrder([letter.copy(to: configuration.router.deadLetterTopic)])[0] {
            logger.error("dead-letter copy failed; the row stays INIT", metadata: ["outbox_id": "\(id)", "error": "\(error)"])
            return false
        }
        try await letter.markDead(on: connection)
        metrics.deadLettered(letter.reason.rawValue).increment()
        logger.warning("row marked DEAD", metadata: ["outbox_id": "\(id)", "reason": "\(letter.lastError.prefix(200))"])
        return true
    }

    /// Deletes COMPLETE rows older than `age`, `retentionBatch` at a time, each batch its
    /// own short transaction so no long lock is ever held.
    func deleteExpired(on connection: PGConnection, olderThan age: Duration) async throws -> Int {
        var deleted = 0
        while true {
            let result = try await connection.query("""
                DELETE FROM outbox WHERE outbox_id IN (
                    SELECT outbox_id FROM outbox
                    WHERE status = 'COMPLETE' AND created_at < now() - make_interval(secs => $1)\(shardCondition)
                    ORDER BY created_at LIMIT $2)
                """, [.text(String(age.inSeconds)), .int(retentionBatch)])
            deleted += result.affectedRows
            metrics.retentionDeleted.increment(by: result.affectedRows)
            if result.affectedRows < retentionBatch { return deleted }
        }
    }

    /// EXPLAIN of the snapshot query, for the docs and the efficiency test.
    func explain(on connection: PGConnection) async throws -> String {
        let plan = try await connection.query("EXPLAIN " + snapshotSQL.replacingOccurrences(of: "$1", with: "10")
            .replacingOccurrences(of: "$2::float8", with: "10::float8").replacingOccurrences(of: "$3::float8", with: "3600::float8")
            .replacingOccurrences(of: "$4", with: "500"))
        return try plan.rows.map { try $0.string("QUERY PLAN") }.joined(separator: "\n")
    }

    /// Runs rounds until cancelled, as `SweepSchedule` says. `isActive` is true while this
    /// relay is the one streaming from the slot; `confirmed` is what it has acknowledged.
    /// Errors are logged and the round retried: the sweeper must not stop the relay.
    func run(producers: ProducerHolder, isActive: @Sendable () -> Bool, confirmed: @Sendable () -> LSN) async {
        var schedule = SweepSchedule(interval: policy.interval, grace: policy.minimumAge,
                                     snapshotExpiry: max(policy.interval * 3, .seconds(60)))
        var connection: PGConnection?
        while !Task.isCancelled {
            let step = schedule.next(now: .now, streaming: isActive(), confirmed: confirmed())
            do {
                switch step {
                case .idle:
                    try? await Task.sleep(for: .milliseconds(200))
                case .waitForStream:
                    try? await Task.sleep(for: .milliseconds(50))
                case .takeSnapshot:
                    let conn = try await connect(&connection)
                    let (ids, watermark) = try await snapshot(on: conn)
                    schedule.tookSnapshot(ids: ids, watermark: watermark, at: .now)
                    if let retention {
                        let deleted = try await deleteExpired(on: conn, olderThan: retention)
                        if deleted > 0 { logger.info("retention", metadata: ["deleted": "\(deleted)"]) }
                    }
                case .resend(let ids):
                    schedule.finishedRound()
                    let result = try await resend(ids, on: try await connect(&connection), producers: producers)
                    if !result.resent.isEmpty || !result.dead.isEmpty {
                        logger.info("sweep", metadata: ["resent": "\(result.resent.count)", "dead": "\(result.dead.count)"])
                    }
                }
            } catch {
                logger.error("sweep failed; retrying next round", metadata: ["error": "\(error)"])
                connection = nil
                schedule.finishedRound()
                try? await Task.sleep(for: policy.interval)
            }
        }
    }

    private func connect(_ connection: inout PGConnection?) async throws -> PGConnection {
        if let connection, connection.isHealthy { return connection }
        let fresh = try await PGConnection.connect(configuration.databaseURL, applicationName: "\(configuration.applicationName)-sweeper")
        connection = fresh
        return fresh
    }
}

/// A row the claim returned, with the record the sweeper re-sends for it.
struct ClaimedRow {
    var id: Int64
    var attempts: Int
    var record: OutgoingRecord

    /// The stream's record for the row, on its own topic (routed when sent), marked as
    /// re-send `attempts + 1`.
    init(_ row: PGRow, style: HeaderStyle) throws {
        let stored = try OutboxRow(stored: row)
        id = stored.id
        attempts = try row.int("attempts")
        record = stored.record(on: stored.topic, style: style, resendAttempt: attempts + 1)
    }
}
