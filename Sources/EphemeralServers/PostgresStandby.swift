import Foundation

/// Streaming standbys for failover tests: the recipe an operator follows (and Patroni or
/// CloudNativePG automate), on one machine.
extension PostgresCluster {
    /// Starts a hot standby of this cluster: `pg_basebackup -C -S physicalSlot -R` (a
    /// physical slot on this primary keeps the WAL the standby needs), another port,
    /// `hot_standby_feedback = on`. On 17+ also `sync_replication_slots = on` and
    /// `dbname=syncDatabase` in `primary_conninfo`, so that logical slots created with
    /// failover are copied to it (`syncSlots: false` leaves that off, as on 15/16). Naming the
    /// standby's slot in this primary's `synchronized_standby_slots` is left to the caller
    /// (the relay is tested without it).
    public func startStandby(physicalSlot: String, syncDatabase: String, syncSlots: Bool = true,
                             extraSettings: [String: String] = [:]) async throws -> PostgresCluster {
        try await offPool { [self] in
            let directory = try makeClusterDirectory(owner: runAs)
            do {
                // -R writes standby.signal; the settings below replace the conninfo it writes.
                try ChildProcesses.run(binDir + "/pg_basebackup",
                                       ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-D", directory + "/data",
                                        "-C", "-S", physicalSlot, "-R", "-X", "stream", "-c", "fast"], asUser: runAs)
            } catch {
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
            var settings = Self.defaultSettings.merging(extraSettings) { $1 }
            settings["hot_standby"] = "on"
            settings["hot_standby_feedback"] = "on"
            settings["primary_slot_name"] = "'\(physicalSlot)'"
            settings["primary_conninfo"] = "'host=127.0.0.1 port=\(port) user=postgres application_name=\(physicalSlot) dbname=\(syncDatabase)'"
            if syncSlots && majorVersion >= 17 { settings["sync_replication_slots"] = "on" }
            let hba = (try? String(contentsOfFile: dataDirectory + "/pg_hba.conf", encoding: .utf8))?
                .split(separator: "\n").map(String.init) ?? Self.defaultHBALines
            return try Self.configureAndStart(directory: directory, binDir: binDir, majorVersion: majorVersion,
                                              runAs: runAs, settings: settings, hbaLines: hba)
        }
    }

    /// `pg_ctl promote`: a standby becomes a primary on a new timeline. Waits until it
    /// accepts writes.
    public func promote() async throws {
        try await offPool { [self] in try pgCtl(["-w", "-t", "60", "promote"]) }
    }

    /// Stops the server the way a crash does (`pg_ctl -m immediate stop`) and leaves it down;
    /// its files stay until `stop()`.
    public func kill() async throws {
        try await offPool { [self] in try pgCtl(["-m", "immediate", "-w", "stop"]) }
    }
}
