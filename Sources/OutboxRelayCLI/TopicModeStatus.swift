import Foundation
import PGOutput
import PostgresClient
import Relay
import RelayCore

/// `status`'s per-topic sweeper lines: every topic that is declared, registered or has
/// INIT rows, with its mode, and for a progress-swept one how far behind its slowest
/// consumer group has read.
enum TopicModeStatus {
    static func lines(scope: SweepScope?, tables: [OutboxTable], on db: PGConnection) async throws -> [String] {
        guard let scope else { return ["sweeper: off (no topic is re-sent)"] }
        let (registrations, now) = try await SweepScopeReader.registrations(on: db)
        let modes = scope.modes(registrations: registrations, now: now)
        var topics = Set(modes.keys)
        for table in tables { topics.formUnion(try await SweepScopeReader.topicsWithInitRows(in: table, on: db)) }
        return topics.sorted().map { topic in
            let mode = SweepScope.mode(of: topic, in: modes)
            var line = "topic \(topic): \(mode.name)"
            if case .sweptByProgress(let readBefore) = mode {
                let groups = registrations.filter { $0.topic == topic }.map(\.group).joined(separator: ",")
                if let readBefore, readBefore > -.infinity {
                    line += " (groups \(groups) have read up to \(String(format: "%.1f", max(0, now - readBefore))) s ago)"
                } else {
                    line += " (groups \(groups): a partition not read yet, nothing is due)"
                }
            }
            return line
        }
    }
}
