public import Logging
import PGOutput
import PostgresClient
public import RelayCore

/// `outbox-relay redrive`: puts DEAD rows back in play after their cause is fixed.
///
/// The command publishes the rows itself, in `outbox_id` order per batch (`RowRepublisher`),
/// and only once a batch is acknowledged flips its rows back to INIT with their attempts
/// reset, guarded by `status = 'DEAD'`. So the redriven set reaches Kafka in order, the
/// operator sees at once what went through and what is still refused, and the running
/// relay is not involved: its stream never sees old rows again, and its sweeper touches
/// only INIT rows. INIT is the status every published row waits in: the consumers complete
/// it (a consumer that completed it before the flip keeps it COMPLETE: the guard), the
/// sweeper's safety net applies again on write-back topics (after its backoff, counted
/// from now), and on publish-only topics retention removes it like any published row.
/// (docs/redrive-and-replay.md says why not just flip the rows for the sweeper.)
public enum Redrive {
    /// The only rows redrive takes.
    public static let statuses = ["DEAD"]

    /// The flip, for the ids of an acknowledged batch.
    static func resetSQL(_ table: OutboxTable) -> String {
        """
        UPDATE \(table.sql) SET status = 'INIT', attempts = 0, last_sent_at = now(), last_error = NULL
        WHERE outbox_id = ANY($1::bigint[]) AND status = 'DEAD'
        """
    }

    /// Runs batches until the selection or the limit is exhausted; `progress` sees each one.
    public static func run(configuration: RelayConfiguration, options: RepublishOptions, logger: Logger,
                           progress: (RepublishProgress) -> Void) async throws -> RepublishSummary {
        var options = options
        options.selection.statuses = statuses
        let republisher = RowRepublisher(configuration: configuration, options: options, logger: logger, settle: { ids, connection in
            guard !ids.isEmpty else { return 0 }
            return try await connection.query(resetSQL(options.selection.table), [.text("{" + ids.map(String.init).joined(separator: ",") + "}")]).affectedRows
        })
        return try await republisher.run(command: "redrive", progress: progress)
    }
}
