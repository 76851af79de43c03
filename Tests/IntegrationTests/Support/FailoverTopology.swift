import EphemeralServers
import Foundation
import PostgresClient

/// The servers of one failover test, and how it reaches them.
struct FailoverTopology: Sendable {
    let primary: PostgresCluster
    let standby: PostgresCluster
    let database: String
    let bootstrapServers: String
    let slot: String
    let httpPort = freeLoopbackPort()
    let logDirectory = NSTemporaryDirectory() + "failover-\(UUID().uuidString.prefix(8))"

    /// What a production relay is given: every host, and only a primary will do.
    var url: String {
        "postgres://postgres@127.0.0.1:\(primary.port),127.0.0.1:\(standby.port)/\(database)?target_session_attrs=read-write"
    }

    /// A relay with default settings (but no sweeper: it would hide a lost row) under a
    /// supervisor; each incarnation logs to `<logDirectory>/<name>-<n>.log`.
    func superviseRelay(name: String = "relay") -> RelaySupervisor {
        try? FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        return RelaySupervisor { incarnation in
            try ChildProcess([try relayBinary(), "run", "--database-url", url, "--kafka-bootstrap-servers", bootstrapServers,
                              "--slot", slot, "--http-port", String(httpPort), "--log-level", "notice",
                              "--set", "sweeper=false", "--set", "spill-dir=\(NSTemporaryDirectory())"],
                             outputPath: "\(logDirectory)/\(name)-\(incarnation).log")
        }
    }

    func failoverReadyMetric() async -> Double? {
        guard let body = await LoopbackHTTP.get(port: httpPort, path: "/metrics")?.body else { return nil }
        return LoopbackHTTP.sample("outbox_relay_slot_failover_ready", in: body)
    }

    /// Every incarnation's log, in order.
    func relayLogs() -> String {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: logDirectory)) ?? [])
            .sorted { $0.count != $1.count ? $0.count < $1.count : $0 < $1 }
        return names.map { (try? String(contentsOfFile: "\(logDirectory)/\($0)", encoding: .utf8)) ?? "" }.joined(separator: "\n")
    }

    func status() async throws -> String {
        try await runTool([try relayBinary(), "status", "--database-url", url, "--slot", slot,
                           "--kafka-bootstrap-servers", bootstrapServers]).output
    }

    /// Every row the server now holds, in commit order (one writer at a time: outbox_id order).
    static func committedRows(_ db: PGConnection) async throws -> [(id: Int64, key: String)] {
        try await db.query("SELECT outbox_id, mq_key FROM outbox ORDER BY outbox_id").rows
            .map { (id: try $0.int64("outbox_id"), key: try $0.string("mq_key")) }
    }
}
