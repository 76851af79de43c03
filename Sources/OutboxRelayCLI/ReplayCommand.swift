import ArgumentParser
import Foundation
import Relay
import RelayCore

/// `outbox-relay replay`: selected rows published again, whatever their status (`Replay`).
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Publish selected rows again whatever their status (e.g. after a consumer bug), marked with an outbox-replay header.",
        discussion: """
            Selects rows by --topic, --type, --reason, --from-id/--to-id or --created-after/--created-before (or \
            --all), at most --limit per run, and publishes them in outbox_id order with the header \
            outbox-replay: <run id>. No status changes; the consumers' status guard absorbs what they had \
            completed. A batch holding rows still INIT first waits (--stream-wait) until the relay has published \
            them, so a replay never delivers a row before the stream. Every batch prints its progress and the \
            --after-id that resumes after it. See docs/redrive-and-replay.md.

            \(ExitStatus.helpText)
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var set: SetOptions
    @OptionGroup var selection: SelectionFlags
    @Option(name: .customLong("run-id"), help: "The outbox-replay header's value (default: replay-<UTC time>-<random>); give the same one to resume a run.")
    var runID: String?

    func run() async throws {
        let id = runID ?? ReplayRunID.generate(epochSeconds: Int64(Date().timeIntervalSince1970), random: .random(in: 0...UInt16.max))
        do { try ReplayRunID.validate(id) } catch { throw CLIError(error.description, status: .usage) }
        if !selection.dryRun { RepublishCommand.say("replay run id \(id)") }
        try await RepublishCommand.run("replay", connection: connection, set: set, flags: selection, statuses: [],
                                       changedLabel: nil) { configuration, options, logger, progress in
            try await Replay.run(configuration: configuration, options: options, runID: id, logger: logger, progress: progress)
        }
    }
}
