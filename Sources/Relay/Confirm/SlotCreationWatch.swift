import Foundation
import Logging
import PostgresClient
import RelayCore
import Threading

/// Runs a replication slot's creation, and while it waits for transactions in progress
/// says which ones, with the fix (`SlotCreationWait`). The look-up runs on a thread and a
/// connection of its own: the creating connection is blocked in the creation.
struct SlotCreationWatch: Sendable {
    let slot: String
    let databaseURL: String
    let applicationName: String
    let logger: Logger

    init(_ configuration: RelayConfiguration, logger: Logger) {
        slot = configuration.slotName
        databaseURL = configuration.databaseURL
        applicationName = configuration.applicationName
        self.logger = logger
    }

    /// The sessions (and prepared transactions: pid 0) the creating backend waits for.
    static let holdersQuery = """
        SELECT b.pid, a.datname, a.usename, a.application_name, a.state,
               extract(epoch FROM now() - a.xact_start)::bigint AS open_seconds
        FROM (SELECT DISTINCT unnest(pg_blocking_pids($1)) AS pid) b
        LEFT JOIN pg_stat_activity a ON a.pid = b.pid
        ORDER BY a.xact_start NULLS LAST, b.pid
        """

    /// Runs `create` (on the calling thread), the creation on the backend `creatorPID`.
    func run<T>(creatorPID: Int32, _ create: () throws -> T) rethrows -> T {
        let finished = DispatchSemaphore(value: 0)
        BlockingThread { [self] in reportWhileWaiting(on: creatorPID, until: finished) }.start()
        defer { finished.signal() }
        return try create()
    }

    /// Reports after `firstReport`, then every `reportEvery`, until `finished` is signalled.
    private func reportWhileWaiting(on creatorPID: Int32, until finished: DispatchSemaphore) {
        let started = ContinuousClock.now
        var wait = SlotCreationWait.firstReport
        var connection: PGConnection?
        while finished.wait(timeout: .now() + .seconds(Int(wait.components.seconds))) == .timedOut {
            let holders: [SlotCreationWait.Holder]?
            do {
                if connection == nil {
                    connection = try PGConnection.connectBlocking(databaseURL, applicationName: "\(applicationName)-slot-watch")
                }
                holders = try Self.holders(of: creatorPID, on: connection!)
            } catch {
                // The look-up is advice: a failure to look only makes the report vaguer.
                connection = nil
                holders = nil
            }
            let report = SlotCreationWait.report(slot: slot, waited: ContinuousClock.now - started, holders: holders)
            logger.warning("\(report.message)", metadata: ["slot": "\(slot)", "fix": "\(report.fix)"])
            wait = SlotCreationWait.reportEvery
        }
    }

    private static func holders(of pid: Int32, on connection: PGConnection) throws -> [SlotCreationWait.Holder] {
        try connection.queryBlocking(holdersQuery, [.int(Int(pid))]).rows.map { row in
            SlotCreationWait.Holder(pid: Int32(try row.int64("pid")), database: try row.optionalString("datname"),
                                    user: try row.optionalString("usename"), application: try row.optionalString("application_name"),
                                    state: try row.optionalString("state"), openSeconds: try row.optionalInt64("open_seconds"))
        }
    }
}
