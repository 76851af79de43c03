public import Logging
import Schema
public import RelayCore

/// `outbox-relay replay`: publishes a selected range of rows again, whatever their status,
/// for example after a consumer bug. Every record carries `outbox-replay: <run id>`; rows
/// go out in `outbox_id` order (`RowRepublisher`), and no status changes: consumers absorb
/// the copies of rows they completed (their status guard) and apply those they had not.
public enum Replay {
    public static func run(configuration: RelayConfiguration, options: RepublishOptions, runID: String, logger: Logger,
                           progress: (RepublishProgress) -> Void) async throws -> RepublishSummary {
        let republisher = RowRepublisher(configuration: configuration, options: options, logger: logger, mark: { record in
            record.headers.append((RecordContract.Header.replay, Array(runID.utf8)))
        })
        return try await republisher.run(command: "replay", progress: progress)
    }
}
