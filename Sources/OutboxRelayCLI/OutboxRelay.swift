import ArgumentParser
import Foundation

@main
struct OutboxRelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox-relay",
        abstract: "Moves transactional-outbox rows from PostgreSQL to Kafka by tailing the WAL, and applies their effects exactly once.",
        discussion: """
            Settings come from flags, then OUTBOX_RELAY_* environment variables, then --config FILE \
            (`name = value` lines), then defaults. `outbox-relay <command> --help` lists each command's flags; \
            any setting can also be given with --set name=value. `outbox-relay settings` prints the configuration reference (docs/configuration.md).

            \(ExitStatus.helpText)
            """,
        version: BuildInfo.version,
        subcommands: [Demo.self, Migrate.self, Run.self, Consume.self, Status.self, Slot.self, RedriveCommand.self, ReplayCommand.self, SettingsReference.self],
        defaultSubcommand: nil)

    /// ArgumentParser's own `main`, except that errors end the process with the status
    /// `ExitStatus` assigns them, and spellings of earlier versions are translated first.
    static func main() async {
        do {
            let arguments = try LegacySpellings.translate(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if error is ExitCode { exit(withError: error) }
            let (status, message) = ExitStatus.of(error)
                ?? (ExitStatus(rawValue: exitCode(for: error).rawValue) ?? .failure, fullMessage(for: error))
            if Observability.logFormat == .json {
                // A log shipper gets the last word as JSON too, like every line before it.
                let line = JSONLogHandler.render(time: JSONLogHandler.now(), level: .critical, component: "outbox-relay",
                                                 message: message, metadata: ["exit_status": "\(status.rawValue)"])
                FileHandle.standardError.write(Data((line + "\n").utf8))
                exit(withError: ExitCode(status.rawValue))
            }
            guard ExitStatus.of(error) != nil else { exit(withError: error) }
            FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
            exit(withError: ExitCode(status.rawValue))
        }
    }
}
