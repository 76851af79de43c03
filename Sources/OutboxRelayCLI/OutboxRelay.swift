import ArgumentParser

@main
struct OutboxRelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox-relay",
        abstract: "Moves transactional-outbox rows from PostgreSQL to Kafka by tailing the WAL, and applies their effects exactly once.",
        discussion: """
            Settings come from flags, then OUTBOX_RELAY_* environment variables, then --config FILE \
            (`name = value` lines), then defaults. `outbox-relay <command> --help` lists each command's flags; \
            any setting can also be given with --set name=value. See README.md for the configuration reference.
            """,
        version: BuildInfo.version,
        subcommands: [Demo.self, Migrate.self, Run.self, Consume.self, Status.self, Slot.self],
        defaultSubcommand: nil)
}
