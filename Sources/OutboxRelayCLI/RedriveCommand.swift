import ArgumentParser
import Relay

/// `outbox-relay redrive`: DEAD rows back in play (`Redrive`).
struct RedriveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redrive",
        abstract: "Publish DEAD rows again after their cause is fixed, in outbox_id order, and put them back to INIT with attempts reset.",
        discussion: """
            Selects DEAD rows by --topic, --type, --reason, --from-id/--to-id or --created-after/--created-before \
            (or --all), at most --limit per run. --dry-run lists them and changes nothing. Each batch is published \
            in outbox_id order and acknowledged before its rows are flipped to INIT (only rows still DEAD), so it is \
            safe while the relay runs. Rows whose route or size still refuses them stay DEAD and are counted by \
            reason. Every batch prints its progress and the --after-id that resumes after it. \
            See docs/redrive-and-replay.md.

            \(ExitStatus.helpText)
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var set: SetOptions
    @OptionGroup var selection: SelectionFlags

    func run() async throws {
        try await RepublishCommand.run("redrive", connection: connection, set: set, flags: selection, statuses: Redrive.statuses,
                                       changedLabel: "moved to INIT") { configuration, options, logger, progress in
            try await Redrive.run(configuration: configuration, options: options, logger: logger, progress: progress)
        }
    }
}
