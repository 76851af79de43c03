import ArgumentParser
import Foundation
import Logging
import PGOutput
import PostgresClient
import Relay
import RelayCore
import Schema

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending schema migrations (safe to run concurrently and repeatedly); install outbox tables in teams' schemas; set up the capture mode's trigger; optionally grant least-privilege roles.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var set: SetOptions

    @Option(help: "notify installs (or upgrades in place) the trigger that NOTIFYs only while the relay's doorbell is set; stream removes it so writers pay nothing. Not given (here or as the capture setting): the database keeps the mode it has, and a table this run installs gets the trigger when the others have it.")
    var capture: String?
    @Option(help: "Split capture into N shards by a hash of mq_key: one publication per shard (slots are created by each shard relay's first start). See docs/operations.md, \"Sharded capture\".")
    var shards: String?
    @Flag(help: "With --shards: allow changing the layout (drops the current slots; stop every relay first).")
    var reshard = false
    @Option(help: "Slot base name for --shards (default \(SettingsCatalog.defaultText("slot")); shard I uses <slot>_I).")
    var slot: String?
    @Option(name: .customLong("schema"), help: ArgumentHelp("Install an outbox table of the outbox's shape in schema S (S.outbox), published like public.outbox, after the migrations (repeatable). Refused when the table exists with another shape. See docs/app-teams.md.", valueName: "S"))
    var schemas: [String] = []
    @Option(help: "With --schema: the table's name in each schema (default outbox).")
    var table = "outbox"
    @Flag(name: .customLong("grant-roles"), help: "Create missing roles and apply sql/roles.sql grants (and the same grants on every outbox table of outbox-tables and --schema).")
    var grantRoles = false
    @Option(name: .customLong("relay-role"), help: "Relay role for --grant-roles (default outbox_relay).")
    var relayRole = "outbox_relay"
    @Option(name: .customLong("consumer-role"), help: "Consumer role for --grant-roles (default outbox_consumer).")
    var consumerRole = "outbox_consumer"

    func run() async throws {
        var extra = try set.flags()
        extra["capture"] = capture
        extra["slot"] = slot
        let resolved = ResolvedConfiguration(settings: try connection.settings(extra: extra))
        let mode = try resolved.choice("capture", default: SettingsCatalog.defaultText("capture"), ["stream", "notify"])
        // Only a mode someone chose changes the trigger: a plain `migrate` at an upgrade must
        // not turn a notify deployment's doorbell off.
        let chosenMode = resolved.settings.raw("capture") == nil ? nil : mode
        let shardCount = try shards.map { text in
            do { return try ShardSpec.parseCount(text) } catch { throw ValidationError("--shards: \(error)") }
        }
        if shardCount != nil, mode == "notify" {
            throw ValidationError("--shards cannot be combined with --capture notify. Fix: sharded relays use stream capture; drop --capture notify.")
        }
        if reshard, shardCount == nil { throw ValidationError("--reshard needs --shards N. Fix: pass the new shard count, e.g. --shards 3 --reshard.") }
        let targets = try outboxTargets()
        // Every table the relays capture, and the ones this run installs: the shard
        // publications and the notify trigger cover them all.
        let listed = try resolved.outboxTables()
        let tables = listed + targets.filter { !listed.contains($0) }
        let publication = resolved.settings.string("publication", default: SettingsCatalog.defaultText("publication"))
        let db: PGConnection
        do { db = try await PGConnection.connect(try resolved.databaseURL) } catch let error as PGError {
            throw StartFailure.postgres(error)
        }
        let report = try await MigrationRunner().run(on: db)
        print(report.applied.isEmpty ? "schema up to date (\(report.alreadyApplied) migrations applied earlier)"
                                     : "applied: \(report.applied.joined(separator: ", "))")
        try await checkShapes(of: tables, installing: targets, on: db)
        for target in targets {
            print(describe(try await OutboxTableMigration.install(target, on: db, publication: publication)))
        }
        let unlisted = targets.filter { !listed.contains($0) }
        if !unlisted.isEmpty {
            print("next: add \(unlisted.map(\.qualifiedName).joined(separator: ", ")) to outbox-tables of the relay and of the consumers, and restart them (outbox-tables = \(tables.map(\.qualifiedName).joined(separator: ",")))")
        }
        switch chosenMode {
        case "notify":
            let channel = resolved.settings.string("notify-channel", default: SettingsCatalog.defaultText("notify-channel"))
            for table in tables { try await NotifyTrigger.install(on: db, channel: channel, table: table) }
            print("notify trigger installed on \(tables.map(\.qualifiedName).joined(separator: ", ")) (rings only while the relay listens)")
        case "stream":
            try await NotifyTrigger.remove(on: db)
            print("stream capture: no notify trigger on any outbox table")
        default:
            try await keepCaptureMode(of: tables, on: db)
        }
        if let shardCount {
            let report = try await ShardMigration.apply(on: db, count: shardCount, reshard: reshard,
                                                        slotBase: resolved.settings.string("slot", default: SettingsCatalog.defaultText("slot")),
                                                        publicationBase: publication, tables: tables)
            if !report.addedTables.isEmpty { print("shards: added \(report.addedTables.joined(separator: ", "))") }
            if !report.droppedSlots.isEmpty || !report.droppedPublications.isEmpty {
                print("reshard: dropped slots [\(report.droppedSlots.joined(separator: ", "))], publications [\(report.droppedPublications.joined(separator: ", "))]")
            }
            print("shards: \(shardCount) (created publications [\(report.createdPublications.joined(separator: ", "))]); start one relay per shard with --shard I/\(shardCount), I = 0...\(shardCount - 1)")
        }
        if grantRoles {
            let env = ProcessInfo.processInfo.environment
            let roles = SchemaRoles(relayRole: relayRole, consumerRole: consumerRole)
            try await roles.apply(on: db, relayPassword: env["OUTBOX_ROLE_RELAY_PASSWORD"], consumerPassword: env["OUTBOX_ROLE_CONSUMER_PASSWORD"])
            // roles.sql covers public.outbox; every other outbox table gets the same grants.
            let others = tables.filter { $0 != .default }
            for table in others { try await roles.grant(table, on: db) }
            print("roles \(relayRole) and \(consumerRole) granted" + (others.isEmpty ? "" : " (also on \(others.map(\.qualifiedName).joined(separator: ", ")))"))
        } else if !targets.isEmpty {
            print("grants: none given; rerun with --grant-roles to grant the relay and consumer roles on \(targets.map(\.qualifiedName).joined(separator: ", ")) what they have on public.outbox. Writers need INSERT on the table and USAGE on its outbox_id sequence, granted by its owner.")
        }
    }

    /// No capture mode given: the trigger stays as it is (its function keeps the channel it
    /// rings), and a table without it gets it when another outbox table has it.
    private func keepCaptureMode(of tables: [OutboxTable], on db: PGConnection) async throws {
        var with: [OutboxTable] = [], without: [OutboxTable] = []
        for table in tables {
            if try await NotifyTrigger.isInstalled(on: db, table: table) { with.append(table) } else { without.append(table) }
        }
        guard !with.isEmpty else {
            print("capture: stream (no notify trigger on any outbox table); `--capture notify` installs it")
            return
        }
        for table in without { try await NotifyTrigger.attach(on: db, table: table) }
        print("capture: notify kept, its trigger on \(tables.map(\.qualifiedName).joined(separator: ", "))"
              + (without.isEmpty ? "" : " (added to \(without.map(\.qualifiedName).joined(separator: ", ")))")
              + "; `--capture stream` removes it")
    }

    /// `--schema` and `--table` as the tables to install.
    private func outboxTargets() throws -> [OutboxTable] {
        if schemas.isEmpty, table != "outbox" { throw ValidationError("--table needs --schema. Fix: name the schema, e.g. --schema team_a --table \(table).") }
        var targets: [OutboxTable] = []
        for schema in schemas {
            let target: OutboxTable
            do { target = try OutboxTable(parsing: "\(schema).\(table)") } catch { throw ValidationError("--schema \(schema): \(error)") }
            if !targets.contains(target) { targets.append(target) }
        }
        return targets
    }

    /// Refuses to go on when a captured table lacks the outbox's shape, or is missing and not
    /// installed by this run: the relay would refuse to start on it, and a shard publication
    /// cannot carry a table that does not exist. Nothing has been changed but the migrations.
    private func checkShapes(of tables: [OutboxTable], installing targets: [OutboxTable], on db: PGConnection) async throws {
        var found: [OutboxTable: OutboxShape.Found] = [:]
        for table in tables { found[table] = try await OutboxShapeCheck.read(table, on: db) }
        try OutboxShape.verify(tables.filter { found[$0] != nil || !targets.contains($0) }, found: found)
    }

    private func describe(_ report: OutboxTableMigration.Report) -> String {
        let name = report.table.qualifiedName
        var lines = [report.created ? "outbox table \(name): created" : "outbox table \(name): exists with the outbox's shape"]
        if !report.addedTo.isEmpty {
            lines[0] += ", added to publication\(report.addedTo.count == 1 ? "" : "s") \(report.addedTo.joined(separator: ", "))"
        } else if report.missingPublication == nil {
            lines[0] += ", already published"
        }
        if let missing = report.missingPublication {
            lines.append("publication \(missing) does not exist yet: the relay's first start creates it")
        }
        return lines.joined(separator: "\n")
    }
}
