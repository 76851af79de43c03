import ArgumentParser
import Foundation
import Logging
import PostgresClient
import Relay
import RelayCore
import Schema

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending schema migrations (safe to run concurrently and repeatedly); set up the capture mode's trigger; optionally grant least-privilege roles.")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "notify installs (or upgrades in place) the trigger that NOTIFYs only while the relay's doorbell is set; stream removes it so writers pay nothing (default \(SettingsCatalog.defaultText("capture"))).")
    var capture: String?
    @Option(help: "Split capture into N shards by a hash of mq_key: one publication per shard (slots are created by each shard relay's first start). See docs/operations.md, \"Sharded capture\".")
    var shards: String?
    @Flag(help: "With --shards: allow changing the layout (drops the current slots; stop every relay first).")
    var reshard = false
    @Option(help: "Slot base name for --shards (default outbox_relay; shard I uses <slot>_I).")
    var slot: String?
    @Flag(name: .customLong("grant-roles"), help: "Create missing roles and apply sql/roles.sql grants.")
    var grantRoles = false
    @Option(name: .customLong("relay-role"), help: "Relay role for --grant-roles (default outbox_relay).")
    var relayRole = "outbox_relay"
    @Option(name: .customLong("consumer-role"), help: "Consumer role for --grant-roles (default outbox_consumer).")
    var consumerRole = "outbox_consumer"

    func run() async throws {
        var extra: [String: String] = [:]
        extra["capture"] = capture
        extra["slot"] = slot
        let resolved = ResolvedConfiguration(settings: try connection.settings(extra: extra))
        let mode = try resolved.choice("capture", default: SettingsCatalog.defaultText("capture"), ["stream", "notify"])
        let shardCount = try shards.map { text in
            do { return try ShardSpec.parseCount(text) } catch { throw ValidationError("--shards: \(error)") }
        }
        if shardCount != nil, mode == "notify" {
            throw ValidationError("--shards cannot be combined with --capture notify. Fix: sharded relays use stream capture; drop --capture notify.")
        }
        if reshard, shardCount == nil { throw ValidationError("--reshard needs --shards N. Fix: pass the new shard count, e.g. --shards 3 --reshard.") }
        let db: PGConnection
        do { db = try await PGConnection.connect(try resolved.databaseURL) } catch let error as PGError {
            throw StartFailure.postgres(error)
        }
        let report = try await MigrationRunner().run(on: db)
        print(report.applied.isEmpty ? "schema up to date (\(report.alreadyApplied) migrations applied earlier)"
                                     : "applied: \(report.applied.joined(separator: ", "))")
        if mode == "notify" {
            try await NotifyTrigger.install(on: db, channel: resolved.settings.string("notify-channel", default: SettingsCatalog.defaultText("notify-channel")))
            print("notify trigger installed (rings only while the relay listens)")
        } else {
            try await NotifyTrigger.remove(on: db)
            print("stream capture: no trigger on outbox")
        }
        if let shardCount {
            let report = try await ShardMigration.apply(on: db, count: shardCount, reshard: reshard,
                                                        slotBase: resolved.settings.string("slot", default: "outbox_relay"),
                                                        publicationBase: resolved.settings.string("publication", default: "outbox_pub"))
            if !report.droppedSlots.isEmpty || !report.droppedPublications.isEmpty {
                print("reshard: dropped slots [\(report.droppedSlots.joined(separator: ", "))], publications [\(report.droppedPublications.joined(separator: ", "))]")
            }
            print("shards: \(shardCount) (created publications [\(report.createdPublications.joined(separator: ", "))]); start one relay per shard with --shard I/\(shardCount), I = 0...\(shardCount - 1)")
        }
        if grantRoles {
            let env = ProcessInfo.processInfo.environment
            try await SchemaRoles(relayRole: relayRole, consumerRole: consumerRole)
                .apply(on: db, relayPassword: env["OUTBOX_ROLE_RELAY_PASSWORD"], consumerPassword: env["OUTBOX_ROLE_CONSUMER_PASSWORD"])
            print("roles \(relayRole) and \(consumerRole) granted")
        }
    }
}
