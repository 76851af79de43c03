import ArgumentParser
import Foundation
import Logging
import Relay

/// `outbox-relay slot …`: explicit operator actions on the relay's replication slot.
struct Slot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Operator actions on the relay's replication slot.",
        subcommands: [Reset.self])

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recreate a lost, invalidated or moved slot, and re-send (in order) every row still INIT that the new slot will not stream.",
            discussion: """
                The relay refuses to start when its slot is missing, invalidated, or confirmed past what any relay \
                recorded (table outbox_relay_slot): recreating it silently would skip every row committed in between. \
                Stop every relay of the slot, then run this. It drops what is left of the slot, creates it anew with an \
                exported snapshot, publishes every outbox row still INIT committed before the new slot (in outbox_id \
                order; rows published before are sent again, consumers absorb duplicates), records the new slot, and \
                exits. Start the relays afterwards. Safe to run again if it fails half-way.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var set: SetOptions
        @Option(help: SettingsCatalog.help("slot"))
        var slot: String?
        @Option(help: "Reset one shard's slot, I/N (re-sends only that shard's rows still INIT).")
        var shard: String?
        @Flag(help: "Required: confirms that every relay of the slot is stopped and the slot may be dropped and recreated.")
        var confirm = false

        func run() async throws {
            var extra = try set.flags()
            extra["slot"] = slot ?? extra["slot"]
            extra["shard"] = shard ?? extra["shard"]
            let resolved = ResolvedConfiguration(settings: try connection.settings(extra: extra))
            let configuration = try resolved.relay()
            // A CLIError, not ArgumentParser's ValidationError: thrown from run(), that one was
            // followed by the root command's generic usage line, which says nothing here.
            guard confirm else {
                throw CLIError("slot reset drops and recreates slot \(configuration.slotName). Fix: stop every relay of that slot first, then add --confirm.",
                               status: .usage)
            }
            Observability.bootstrap(logLevel: try resolved.logLevel(), format: try resolved.logFormat())
            let report = try await SlotReset.run(configuration: configuration, logger: Logger(label: "outbox-relay"))
            print("slot \(report.slot) recreated at \(report.lsn) (recorded before: \(report.previouslyRecorded.map { "\($0)" } ?? "none")); "
                  + "\(report.resent) INIT rows committed before it re-sent"
                  + (report.alreadyDelivered.map { ", \($0) already delivered by the old slot left out" }
                     ?? " (every INIT row: the record holds no delivered snapshot, because migration 0008 is missing or the old slot never confirmed one)")
                  + (report.unroutable > 0 ? "; \(report.unroutable) rows with a refused topic left to the sweeper" : "")
                  + ". Start the relays now.")
        }
    }
}
