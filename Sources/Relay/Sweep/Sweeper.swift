import Foundation
import KafkaClient
import Logging
public import PGOutput
import PostgresClient
public import RelayCore
import Schema
import Synchronization

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
/// merely slow are not flooded.
///
/// Only swept topics are re-sent, and a progress-swept row only once its consumers have
/// read past it (`SweepScope`, issue 31): the scope is read from the registration tables
/// at each round. Retention deletes every kind of row once it is old enough, in the same
/// rounds and after the same watermark wait, so a row the stream has not published yet is
/// never deleted: COMPLETE rows and publish-only INIT rows after `retention`, DEAD rows
/// after the policy's `deadRetention`.
///
/// One sweeper per outbox table (`outbox-tables`): each table has its own rounds, its own
/// candidates and its own retention, so a large or stuck table never delays another's.
public final class Sweeper: Sendable {
    public let policy: SweeperPolicy
    /// The table this sweeper re-sends from and deletes from.
    public let table: OutboxTable
    /// Delete COMPLETE rows and publish-only rows older than this; nil keeps them forever.
    public let retention: Duration?
    /// Rows read per status for deletion in one round, deleted 1,000 per statement; a
    /// full list starts the next round at once, so retention keeps up with a steady load.
    public let retentionBatch: Int
    private let configuration: RelayConfiguration
    private let logger: Logger
    private let metrics: RelayMetrics
    /// Topics whose mode gauge was set, so one that leaves the scope is shown publish-only.
    private let shownTopics = Mutex<Set<String>>([])

    init(policy: SweeperPolicy, retention: Duration?, retentionBatch: Int = 5_000, table: OutboxTable = .default,
         configuration: RelayConfiguration, logger: Logger, metrics: RelayMetrics) {
        self.policy = policy; self.retention = retention; self.retentionBatch = retentionBatch; self.table = table
        self.configuration = configuration; self.metrics = metrics
        var logger = logger
        if table != .default { logger[metadataKey: "table"] = "\(table)" }
        self.logger = logger
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

    /// Which rows retention deletes, by status, each served by its partial index:
    /// COMPLETE and publish-only INIT rows (`retention`: its seconds), DEAD rows
    /// (`deadRetention`); a NULL age keeps them. `swept`: the swept topics' text[] parameter.
    private func expiredConditions(swept: String, retention: String, deadRetention: String) -> [String] {
        [
            "status = 'COMPLETE' AND created_at < now() - make_interval(secs => \(retention))",
            "status = 'INIT' AND topic <> ALL(\(swept)::text[]) AND created_at < now() - make_interval(secs => \(retention))",
            "status = 'DEAD' AND created_at < now() - make_interval(secs => \(deadRetention))",
        ].map { $0 + shardCondition }
    }

    private func ageParameter(_ age: Duration?) -> PGValue { age.map { .text(String($0.inSeconds)) } ?? .null }
    /// A text-format array literal, every element quoted (topics are `[a-zA-Z0-9._-]`, so
    /// none needs escaping, and a topic named NULL stays a name).
    private func arrayParameter(_ values: [some CustomStringConvertible]) -> PGValue {
        .text("{" + values.map { "\"\($0)\"" }.joined(separator: ",") + "}")
    }

    /// Candidates (INIT rows of swept topics), rows past retention and the watermark in
    /// one statement, so in one snapshot: every row read committed before
    /// `pg_current_wal_insert_lsn()` is evaluated. Takes no lock.
    var snapshotSQL: String {
        let expired = expiredConditions(swept: "$5", retention: "$6", deadRetention: "$7").map { "(SELECT outbox_id FROM \(table.sql) WHERE \($0) ORDER BY created_at LIMIT $8)" }
        return """
        SELECT pg_current_wal_insert_lsn()::text AS watermark, c.ids, c.topics, e.expired
        FROM (SELECT COALESCE(string_agg(outbox_id::text, ',' ORDER BY outbox_id), '') AS ids,
                     COALESCE(string_agg(topic, ',' ORDER BY outbox_id), '') AS topics
              FROM (SELECT outbox_id, topic FROM \(table.sql) WHERE \(dueCondition) AND topic = ANY($5::text[])
                    ORDER BY created_at LIMIT $4) candidates) c,
             (SELECT COALESCE(string_agg(outbox_id::text, ','), '') AS expired
              FROM (\(expired.joined(separator: " UNION ALL "))) e) e
        """
    }

    /// Claims the candidates still due, in one short statement: `last_sent_at` is the
    /// claim (a second sweeper's re-check finds the row not due), SKIP LOCKED passes over
    /// rows a consumer holds right now (they are being completed anyway).
    var claimSQL: String {
        """
        UPDATE \(table.sql) o SET last_sent_at = now()
        FROM (SELECT outbox_id FROM \(table.sql) WHERE outbox_id = ANY($5::bigint[]) AND \(dueCondition)
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

    struct Snapshot {
        var candidates: [Int64: String]
        var expired: [Int64]
        var watermark: LSN
        /// A list was cut at its limit: more rows wait.
        var more: Bool
        var ids: [Int64] { candidates.keys.sorted() }
    }

    /// Step 1 of a round: the candidates of the `swept` topics (at most one batch), the
    /// rows past retention and the watermark.
    func snapshot(on connection: PGConnection, swept: [String]) async throws -> Snapshot {
        let row = try await connection.query(snapshotSQL, dueParameters + [
            arrayParameter(swept), ageParameter(retention), ageParameter(policy.deadRetention), .int(retentionBatch),
        ]).single()
        let ids = try row.string("ids").split(separator: ",").compactMap { Int64($0) }
        let topics = try row.string("topics").split(separator: ",").map(String.init)
        let expired = try row.string("expired").split(separator: ",").compactMap { Int64($0) }
        return Snapshot(candidates: Dictionary(zip(ids, topics), uniquingKeysWith: { a, _ in a }), expired: expired,
                        watermark: try row.lsn("watermark"), more: expired.count >= retentionBatch)
    }

    /// The topics' modes now (`SweepScopeReader`).
    func modes(on connection: PGConnection) async throws -> [String: SweepScope.Mode] {
        try await SweepScopeReader.modes(scope: policy.scope, routes: configuration.router.routes, on: connection)
    }

    /// Step 3 of a round: claims `ids` still due, re-sends them in order (rows of one key
    /// one after another, in outbox_id order), dead-letters those out of attempts, and
    /// records the outcome. Call it only once the stream has published every id.
    func resend(_ ids: [Int64], on connection: PGConnection, producers: ProducerHolder) async throws -> RoundResult {
        guard !ids.isEmpty else { return RoundResult() }
        let claimed = try await connection.query(claimSQL, dueParameters + [.text("{" + ids.map(String.init).joined(separator: ",") + "}")])
            .rows.map { try ClaimedRow($0, table: table, style: configuration.headerStyle) }.sorted { $0.id < $1.id }
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
            try await connection.query("UPDATE \(table.sql) SET attempts = attempts + 1 WHERE outbox_id = ANY($1::bigint[]) AND status = 'INIT'",
                                       [.text("{" + sent.map(String.init).joined(separator: ",") + "}")])
            metrics.sweeperResends(table: table).increment(by: sent.count)
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
        metrics.deadLettered(letter.reason.rawValue, table: letter.table).increment()
        logger.warning("row marked DEAD", metadata: ["outbox_id": "\(id)", "reason": "\(letter.lastError.prefix(200))"])
        return true
    }

    /// Deletes `ids` (read past retention in a snapshot the stream has confirmed past),
    /// 1,000 per statement, each its own short transaction so no long lock is ever held.
    /// The condition is checked again: a row re-driven or completed meanwhile stays.
    func deleteExpired(_ ids: [Int64], on connection: PGConnection, swept: [String]) async throws -> Int {
        var deleted = 0
        let conditions = expiredConditions(swept: "$2", retention: "$3", deadRetention: "$4")
        for start in stride(from: 0, to: ids.count, by: 1_000) {
            let chunk = Array(ids[start..<min(start + 1_000, ids.count)])
            let result = try await connection.query("""
                DELETE FROM \(table.sql) WHERE outbox_id = ANY($1::bigint[]) AND ((\(conditions.joined(separator: ") OR ("))))
                """, [arrayParameter(chunk), arrayParameter(swept), ageParameter(retention), ageParameter(policy.deadRetention)])
            deleted += result.affectedRows
            metrics.retentionDeleted(table: table).increment(by: result.affectedRows)
        }
        return deleted
    }

    /// EXPLAIN of the snapshot query, for the docs and the efficiency test.
    func explain(on connection: PGConnection, swept: [String] = ["T"]) async throws -> String {
        let plan = try await connection.query("EXPLAIN " + snapshotSQL.replacingOccurrences(of: "$1", with: "10")
            .replacingOccurrences(of: "$2::float8", with: "10::float8").replacingOccurrences(of: "$3::float8", with: "3600::float8")
            .replacingOccurrences(of: "$4", with: "500").replacingOccurrences(of: "$5", with: "'{" + swept.joined(separator: ",") + "}'")
            .replacingOccurrences(of: "$6", with: "604800").replacingOccurrences(of: "$7", with: "2592000")
            .replacingOccurrences(of: "$8", with: "5000"))
        return try plan.rows.map { try $0.string("QUERY PLAN") }.joined(separator: "\n")
    }

    /// `outbox_relay_sweeper_topic_mode{topic,mode}`: 1 for each swept topic's mode, 0
    /// for its other modes, and 0 for all of a topic that is no longer swept.
    private func publish(_ modes: [String: SweepScope.Mode]) {
        let shown = Set(modes.keys).union(shownTopics.withLock { $0 })
        for topic in shown { metrics.recordTopicMode(topic: topic, mode: SweepScope.mode(of: topic, in: modes)) }
        shownTopics.withLock { $0 = shown }
    }

    /// Runs rounds until cancelled, as `SweepSchedule` says. `isActive` is true while this
    /// relay is the one streaming from the slot; `confirmed` is what it has acknowledged.
    /// Errors are logged and the round retried: the sweeper must not stop the relay.
    func run(producers: ProducerHolder, isActive: @Sendable () -> Bool, confirmed: @Sendable () -> LSN) async {
        var schedule = SweepSchedule(interval: policy.interval, grace: policy.minimumAge,
                                     snapshotExpiry: max(policy.interval * 3, .seconds(60)))
        var connection: PGConnection?
        var swept: [String] = []
        var failuresInARow = 0
        while !Task.isCancelled {
            let step = schedule.next(now: .now, wallNow: Date().timeIntervalSince1970, streaming: isActive(), confirmed: confirmed())
            do {
                switch step {
                case .idle:
                    try? await Task.sleep(for: .milliseconds(200))
                case .waitForStream:
                    try? await Task.sleep(for: .milliseconds(50))
                case .takeSnapshot:
                    let conn = try await connect(&connection)
                    let modes = try await modes(on: conn)
                    publish(modes)
                    swept = modes.filter(\.value.isSwept).keys.sorted()
                    let snapshot = try await snapshot(on: conn, swept: swept)
                    schedule.tookSnapshot(candidates: snapshot.candidates, expired: snapshot.expired, watermark: snapshot.watermark,
                                          at: .now, more: snapshot.more)
                case .deleteExpired(let ids):
                    let deleted = try await deleteExpired(ids, on: try await connect(&connection), swept: swept)
                    if deleted > 0 { logger.info("retention", metadata: ["deleted": "\(deleted)"]) }
                case .resendDue:
                    // The consumers' progress as of now, not as of the snapshot.
                    let conn = try await connect(&connection)
                    let ids = schedule.finishRound(modes: try await modes(on: conn))
                    let result = try await resend(ids, on: conn, producers: producers)
                    if !result.resent.isEmpty || !result.dead.isEmpty {
                        logger.info("sweep", metadata: ["resent": "\(result.resent.count)", "dead": "\(result.dead.count)"])
                    }
                }
                if step.usesDatabase { failuresInARow = 0 }
            } catch {
                failuresInARow += 1
                logger.log(level: Self.failureLevel(inARow: failuresInARow), "sweep failed; retrying next round",
                           metadata: ["error": "\(error)", "attempt": "\(failuresInARow)"])
                connection = nil
                schedule.finishedRound()
                try? await Task.sleep(for: policy.interval)
            }
        }
    }

    /// A round that fails once is routine: its idle connection did not survive a PostgreSQL
    /// restart, and the next round connects again (it was an error line on every restart). A
    /// second failure in a row is not that: the one error line; later ones repeat it.
    static func failureLevel(inARow failures: Int) -> Logger.Level {
        failures == 2 ? .error : .warning
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
    init(_ row: PGRow, table: OutboxTable, style: HeaderStyle) throws {
        let stored = try OutboxRow(stored: row, table: table)
        id = stored.id
        attempts = try row.int("attempts")
        record = stored.record(on: stored.topic, style: style, resendAttempt: attempts + 1)
    }
}
