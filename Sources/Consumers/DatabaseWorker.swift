import Foundation
import KafkaClient
import Logging
import PostgresClient

/// The database thread: a serial queue that applies one `ApplyJob` at a time, retrying the
/// database side until it works (or the core says to give up while stopping).
///
/// Its connection is used only by jobs on `queue`, hence `@unchecked Sendable`.
final class DatabaseWorker: @unchecked Sendable {
    private let service: ConsumerService
    private let queue = DispatchQueue(label: "outbox-consumers.database")
    private var connection: PGConnection?
    private let applier: EffectApplier

    init(service: ConsumerService) {
        self.service = service
        applier = EffectApplier(tables: service.configuration.tables)
    }

    private var configuration: ConsumerConfiguration { service.configuration }
    private var logger: Logger { service.logger }

    /// Starts applying `job` on the database thread; `job.done` is signalled when it ends.
    func apply(_ job: ApplyJob) {
        queue.async { [self] in
            service.hooks.beforeDatabaseApply?()
            job.result = Result { try applyWithRetries(job) }
            job.done.signal()
        }
    }

    /// Closes the connection, after any job still queued.
    func close() { queue.sync { connection = nil } }

    private func applyWithRetries(_ job: ApplyJob) throws -> [ApplyOutcome] {
        while true {
            do {
                let outcomes = try applyBatch(job.batch, prepared: job.prepared)
                if service.core.withLock({ $0.databaseSucceeded() }) { logger.notice("applying batches again; no longer stalled") }
                return outcomes
            } catch let error as SimulatedCrash {
                throw error
            } catch {
                connection = nil
                switch service.core.withLock({ $0.databaseFailed(ConsumerService.briefly(error)) }) {
                case .giveUp:
                    throw error
                case .retry(let delay, let stallBegins):
                    service.metrics.transactionRetries.increment()
                    // One error per stall, not per retry: a PostgreSQL restart fails several and heals.
                    logger.log(level: stallBegins ? .error : .warning,
                               stallBegins ? "applying batches keeps failing; stalled (readyz 503), retrying" : "applying a batch failed; retrying it",
                               metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                    Thread.sleep(forTimeInterval: delay / .seconds(1))
                }
            }
        }
    }

    private func applyBatch(_ batch: [KafkaMessage], prepared: PreparedBatch) throws -> [ApplyOutcome] {
        if connection == nil || connection?.isHealthy == false {
            connection = try PGConnection.connectBlocking(configuration.databaseURL, applicationName: configuration.applicationName)
        }
        let conn = connection!
        // A missing row rolls the batch back and retries it a few times before it counts as
        // poison (`ConsumerStateMachine.Policy.rowMayStillAppear` says why).
        var attempt = 0
        var outcomes: [ApplyOutcome]
        while true {
            do {
                outcomes = try applyInTransaction(batch, prepared: prepared, on: conn,
                                                  acceptMissingRows: ConsumerStateMachine.acceptsMissingRows(attempt: attempt))
                break
            } catch is RowsNotYetVisible {
                if attempt == 0 { logger.info("an outbox row is not visible yet; retrying the batch", metadata: ["messages": "\(batch.count)"]) }
                service.metrics.transactionRetries.increment()
                let delay = service.core.withLock { $0.visibilityRetry(attempt) }
                Thread.sleep(forTimeInterval: delay / .seconds(1))
                attempt += 1
            }
        }
        try service.hooks.afterDatabaseCommit?()
        return outcomes
    }

    /// One attempt: set-based, or, when the database refuses the batch's data, one message
    /// per savepoint. Throws `RowsNotYetVisible` (rolling back) unless `acceptMissingRows`.
    private func applyInTransaction(_ batch: [KafkaMessage], prepared: PreparedBatch, on conn: PGConnection, acceptMissingRows: Bool) throws -> [ApplyOutcome] {
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        let policy = service.core.withLock { $0.policy }
        func check(_ outcomes: [ApplyOutcome]) throws -> [ApplyOutcome] {
            if !acceptMissingRows, zip(batch, outcomes).contains(where: {
                $1.isMissingRow && policy.rowMayStillAppear(producedAtMilliseconds: $0.timestampMilliseconds, nowMilliseconds: now)
            }) {
                throw RowsNotYetVisible()
            }
            return outcomes
        }
        do {
            return try conn.transactionBlocking { conn in try check(applier.applyBatch(prepared, on: conn)) }
        } catch let error as PGError where DatabaseFailure(sqlState: error.sqlState) == .rejectedData {
            // The database refused some message's data (constraint, type, invalid JSON):
            // nothing of the batch was kept. Redo it one message per savepoint, so only the
            // message at fault is poisoned and the others are applied. Any other refusal
            // reaches `applyWithRetries`: the whole batch is retried, never dead-lettered.
            logger.notice("batch refused by the database; applying it message by message",
                          metadata: ["error": "\(error.sqlState ?? "") \(error.message)", "messages": "\(batch.count)"])
            return try applyOneByOne(batch, on: conn, check: check)
        }
    }

    private func applyOneByOne(_ batch: [KafkaMessage], on conn: PGConnection,
                               check: ([ApplyOutcome]) throws -> [ApplyOutcome]) throws -> [ApplyOutcome] {
        try conn.transactionBlocking { conn in
            var outcomes: [ApplyOutcome] = []
            for message in batch {
                try conn.queryBlocking("SAVEPOINT message")
                do {
                    let outcome = try applier.apply(message, on: conn)
                    if case .poison = outcome { try conn.queryBlocking("ROLLBACK TO SAVEPOINT message") }
                    outcomes.append(outcome)
                } catch let error as PGError where DatabaseFailure(sqlState: error.sqlState) == .rejectedData {
                    try conn.queryBlocking("ROLLBACK TO SAVEPOINT message")
                    outcomes.append(.poison(reason: "rejected_by_database", detail: "\(error.sqlState ?? "") \(error.message)"))
                }
                try conn.queryBlocking("RELEASE SAVEPOINT message")
            }
            return try check(outcomes)
        }
    }
}

/// A batch referred to an outbox row this transaction could not see (yet); rolled back.
struct RowsNotYetVisible: Error {}
