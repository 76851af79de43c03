import ArgumentParser
import CLISettings
import Foundation
import Logging
import PGOutput
import PostgresClient
import Relay
import RelayCore

/// The flags `redrive` and `replay` share: the selection, the bounds, the resume point, and
/// the dry run. Parsed into the pure `RowSelection` and `RepublishCursor`.
struct SelectionFlags: ParsableArguments {
    @Option(name: .customLong("topic"), help: "Rows of this topic (outbox.topic; repeatable).")
    var topics: [String] = []
    @Option(name: .customLong("type"), help: "Rows of this type (outbox.type; repeatable).")
    var types: [String] = []
    @Option(help: "Rows whose last_error contains this text, e.g. a dead-letter reason such as message_too_large.")
    var reason: String?
    @Option(name: .customLong("from-id"), help: "Rows with outbox_id at least this.")
    var fromID: Int64?
    @Option(name: .customLong("to-id"), help: "Rows with outbox_id at most this.")
    var toID: Int64?
    @Option(name: .customLong("created-after"), help: "Rows created at or after this RFC 3339 time, e.g. 2026-12-06T10:00:00Z.")
    var createdAfter: String?
    @Option(name: .customLong("created-before"), help: "Rows created before this RFC 3339 time.")
    var createdBefore: String?
    @Flag(help: "Every row, with no selector (a selector or --all is required).")
    var all = false
    @Option(name: .customLong("after-id"), help: "Resume: start after this outbox_id (a run prints it after every batch).")
    var afterID: Int64 = 0
    @Option(help: "At most this many rows in this run (default \(RepublishCursor.defaultLimit)); the last line says how to go on.")
    var limit: Int = RepublishCursor.defaultLimit
    @Option(name: .customLong("batch-size"), help: "Rows per batch: sent, acknowledged, then recorded (default \(RepublishCursor.defaultBatchSize)).")
    var batchSize: Int = RepublishCursor.defaultBatchSize
    @Option(name: .customLong("stream-wait"),
            help: "How long a batch holding rows still INIT waits for the relay to have published them (default \(RepublishOptions.defaultStreamWait.components.seconds)s).")
    var streamWait: String?
    @Option(name: .customLong("send-timeout"),
            help: "How long a record may wait for Kafka before the run stops with its resume point (default \(RepublishOptions.defaultSendTimeout.components.seconds)s).")
    var sendTimeout: String?
    @Flag(name: .customLong("dry-run"), help: "List what would be sent (counts per topic, status and reason, then the first rows); change nothing.")
    var dryRun = false
    @Option(help: SettingsCatalog.help("slot"))
    var slot: String?
    @Option(help: "The outbox table the rows are in, schema.table (default public.outbox; one of outbox-tables).")
    var table: String?

    /// The options, or a usage error (exit 64) with the fix.
    func options(statuses: [String]) throws -> RepublishOptions {
        do {
            let selection = try RowSelection(topics: topics, types: types, reason: reason, fromID: fromID, toID: toID,
                                             createdAfter: createdAfter, createdBefore: createdBefore, all: all, statuses: statuses,
                                             table: try outboxTable())
            let cursor = try RepublishCursor(afterID: afterID, limit: limit, batchSize: batchSize)
            return RepublishOptions(selection: selection, cursor: cursor,
                                    streamWait: try duration("--stream-wait", streamWait) ?? RepublishOptions.defaultStreamWait,
                                    sendTimeout: try duration("--send-timeout", sendTimeout) ?? RepublishOptions.defaultSendTimeout)
        } catch let error as SelectionError {
            throw CLIError(error.description, status: .usage)
        }
    }

    /// `--table`, parsed; public.outbox when not given.
    private func outboxTable() throws -> OutboxTable {
        guard let table else { return .default }
        do { return try OutboxTable(parsing: table) } catch {
            throw CLIError("--table: \(error)", status: .usage)
        }
    }

    /// A positive duration flag, nil when not given.
    private func duration(_ flag: String, _ text: String?) throws -> Duration? {
        guard let text else { return nil }
        guard let parsed = Settings.parseDuration(text), parsed > .zero else {
            throw SelectionError("\(flag) \(text) is not a positive duration", fix: "write it like 90s or 5m")
        }
        return parsed
    }
}

/// What `redrive` and `replay` do around their run: resolve the settings as `run` does,
/// check the servers, print the dry run or each batch's progress line, and map a stop to
/// its exit status. The commands differ only in the run they pass.
enum RepublishCommand {
    typealias Body = (RelayConfiguration, RepublishOptions, Logger, (RepublishProgress) -> Void) async throws -> RepublishSummary

    static func run(_ name: String, connection: ConnectionOptions, set: SetOptions, flags: SelectionFlags, statuses: [String],
                    changedLabel: String?, body: Body) async throws {
        var extra = try set.flags()
        extra["slot"] = flags.slot ?? extra["slot"]
        let resolved = ResolvedConfiguration(settings: try connection.settings(extra: extra))
        let options = try flags.options(statuses: statuses)
        let configuration = try resolved.relay()
        guard configuration.tables.contains(options.selection.table) else {
            throw CLIError("--table \(options.selection.table) is not one of outbox-tables (\(configuration.tables.map(\.qualifiedName).joined(separator: ", "))): the relay does not capture it, and the consumers do not update it. Fix: name a captured table, or add it to outbox-tables (in the config file the relay and the consumers read).", status: .usage)
        }
        Observability.bootstrap(logLevel: try resolved.logLevel(), format: try resolved.logFormat())
        let logger = Logger(label: "outbox-relay")
        if flags.dryRun {
            let preview: RepublishPreview
            do {
                preview = try await RepublishPreview.read(configuration: configuration, selection: options.selection, afterID: options.cursor.afterID)
            } catch let error as PGError where error.code == .connectionFailed { throw StartFailure.postgres(error) }
            for line in dryRunLines(name, preview, limit: options.cursor.limit) { say(line) }
            return
        }
        try await Preflight.check(databaseURL: configuration.databaseURL, tables: [options.selection.table],
                                  kafka: configuration.kafka, logger: logger)
        let summary: RepublishSummary
        do {
            summary = try await body(configuration, options, logger) { say(progressLine(name, $0, changedLabel: changedLabel)) }
        } catch let stopped as RepublishStopped {
            throw CLIError("\(name) stopped: \(stopped)", status: .unavailable)
        }
        say(doneLine(name, summary, limit: options.cursor.limit, changedLabel: changedLabel))
    }

    /// One line to standard output, at once (a progress line is worth little once the run ended).
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func refusedText(_ refused: [String: Int]) -> String {
        let total = refused.values.reduce(0, +)
        guard total > 0 else { return "refused 0" }
        return "refused \(total) (" + refused.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
    }

    static func progressLine(_ name: String, _ p: RepublishProgress, changedLabel: String?) -> String {
        "\(name) batch \(p.batch): \(p.rows) rows (outbox_id \(p.firstID)..\(p.lastID)): published \(p.published), \(refusedText(p.refused))"
            + (changedLabel.map { ", \($0) \(p.changed)" } ?? "") + "; done \(p.done); resume with --after-id \(p.resumeAfter)"
    }

    static func doneLine(_ name: String, _ s: RepublishSummary, limit: Int?, changedLabel: String?) -> String {
        "\(name) done: published \(s.published), \(refusedText(s.refused))" + (changedLabel.map { ", \($0) \(s.changed)" } ?? "")
            + " in \(s.batches) batches; last outbox_id \(s.resumeAfter)"
            + (s.limitReached ? "; --limit \(limit ?? 0) reached, more rows may match: run again with --after-id \(s.resumeAfter)" : "")
    }

    static func dryRunLines(_ name: String, _ preview: RepublishPreview, limit: Int?) -> [String] {
        var lines = ["\(name) --dry-run: \(preview.total) rows match" + (limit.map { preview.total > $0 ? "; a run takes the first \($0) (--limit)" : "" } ?? "")
                     + "; nothing was changed"]
        for group in preview.groups {
            lines.append("  topic \(group.topic) status \(group.status)" + (group.reason.isEmpty ? "" : " reason \(group.reason)")
                         + ": \(group.count) rows (outbox_id \(group.firstID)..\(group.lastID))")
        }
        if !preview.firstRows.isEmpty { lines.append("first rows:") }
        for row in preview.firstRows {
            lines.append("  \(row.id) \(row.topic) key \(row.key) type \(row.type) \(row.status) created \(row.createdAt)"
                         + (row.lastError.map { " last_error \($0)" } ?? ""))
        }
        return lines
    }
}
