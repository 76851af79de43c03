import Foundation
import PostgresClient
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL cluster: `initdb` into a temp dir (as the `postgres` OS user
/// when this process is root, because initdb refuses root), `wal_level=logical`, a free
/// loopback port, trust authentication on loopback only (callers may replace `pg_hba.conf`
/// and add files, e.g. for a TLS-only server). `stop()` removes everything. The server is
/// the one in `OUTBOX_PG_BIN` (default: Debian's 15; see `ServerBinaries`).
public final class PostgresCluster: Sendable {
    public let port: Int
    /// The server's major version (15, 18, ...).
    public let majorVersion: Int
    public let directory: String
    public var dataDirectory: String { directory + "/data" }
    public var logPath: String { directory + "/postgres.log" }
    let binDir: String
    let runAs: String?
    private let cleanupID: Int

    /// Superuser DSN for `database`.
    public func url(database: String = "postgres", user: String = "postgres", password: String? = nil) -> String {
        let credentials = password.map { "\(user):\($0)" } ?? user
        return "postgres://\(credentials)@127.0.0.1:\(port)/\(database)"
    }

    init(port: Int, directory: String, binDir: String, majorVersion: Int, runAs: String?) {
        self.port = port
        self.majorVersion = majorVersion
        self.directory = directory
        self.binDir = binDir
        self.runAs = runAs
        let pgCtl = binDir + "/pg_ctl", data = directory + "/data"
        self.cleanupID = ChildProcesses.atExit {
            _ = try? ChildProcesses.run(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"], asUser: runAs)
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// Settings every cluster gets. Tests may add more with `extraSettings`.
    public static let defaultSettings: [String: String] = [
        "wal_level": "logical",
        // The integration suites share one cluster and run in parallel; shard tests take three
        // slots each. A slot costs a few hundred bytes of shared memory.
        "max_replication_slots": "256",
        "max_wal_senders": "256",
        "max_connections": "300",
        "shared_buffers": "128MB",
        "fsync": "off",                 // throwaway data; process crashes still keep the page cache
        "full_page_writes": "off",
        "synchronous_commit": "on",
        "logical_decoding_work_mem": "64MB",
        "wal_sender_timeout": "60s",
        "log_min_messages": "warning",
        "log_connections": "off",
        "max_locks_per_transaction": "256",
    ]

    /// The `pg_hba.conf` every cluster gets unless `start(hbaLines:)` replaces it: trust on
    /// loopback and the Unix socket, for normal and replication connections.
    public static let defaultHBALines = [
        "local all all trust",
        "host all all 127.0.0.1/32 trust",
        "host replication all 127.0.0.1/32 trust",
        "local replication all trust",
    ]

    /// Creates and starts a cluster. Throws `ServerBinaryMissing` naming `scripts/setup`
    /// when the server binaries are not installed.
    /// - Parameters:
    ///   - extraSettings: `postgresql.conf` settings on top of `defaultSettings` (values as
    ///     written in the file, so strings carry their quotes).
    ///   - hbaLines: the whole `pg_hba.conf`, replacing `defaultHBALines` (e.g. `hostssl`
    ///     lines for a TLS-only server).
    ///   - dataFiles: files to place in the data directory before the server starts, by
    ///     name, owned by the server's OS user with mode 0600 (e.g. a TLS key and
    ///     certificate that `ssl_key_file` / `ssl_cert_file` name).
    ///   - binDir: the server binaries to run; nil: `OUTBOX_PG_BIN`'s (`ServerBinaries`).
    public static func start(extraSettings: [String: String] = [:], hbaLines: [String] = defaultHBALines,
                             dataFiles: [String: String] = [:], binDir: String? = nil) async throws -> PostgresCluster {
        let binDir = try binDir ?? ServerBinaries.postgresBinDir()
        return try await offPool {
            let runAs: String? = ChildProcesses.isRoot ? "postgres" : nil
            let major = try ServerBinaries.postgresMajorVersion(binDir: binDir)
            let directory = try makeClusterDirectory(owner: runAs)
            let data = directory + "/data"
            do {
                try ChildProcesses.run(binDir + "/initdb",
                                       ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                        "--no-locale", "-N"], asUser: runAs)
            } catch {
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
            return try configureAndStart(directory: directory, binDir: binDir, majorVersion: major, runAs: runAs,
                                         settings: defaultSettings.merging(extraSettings) { $1 }, hbaLines: hbaLines,
                                         dataFiles: dataFiles)
        }
    }

    /// Writes the settings with a free port into `directory`'s data directory and starts the
    /// server there, trying another port when one was taken meanwhile. Blocking.
    static func configureAndStart(directory: String, binDir: String, majorVersion: Int, runAs: String?,
                                  settings base: [String: String], hbaLines: [String],
                                  dataFiles: [String: String] = [:]) throws -> PostgresCluster {
        let data = directory + "/data"
        var lastError: (any Error)?
        for _ in 0..<3 {
            let port = freeLoopbackPort()
            var settings = base
            settings["port"] = String(port)
            settings["listen_addresses"] = "'127.0.0.1'"
            settings["unix_socket_directories"] = "'\(directory)'"
            let conf = settings.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n")
            try writeAsOwner(conf + "\n", to: data + "/postgresql.auto.conf", owner: runAs)
            try writeAsOwner(hbaLines.joined(separator: "\n") + "\n", to: data + "/pg_hba.conf", owner: runAs)
            for (name, contents) in dataFiles {
                // The server refuses a private key that others can read.
                try writeAsOwner(contents, to: data + "/" + name, owner: runAs, mode: 0o600)
            }
            let cluster = PostgresCluster(port: port, directory: directory, binDir: binDir, majorVersion: majorVersion, runAs: runAs)
            do {
                try cluster.pgCtl(["-l", cluster.logPath, "-w", "-t", "60", "start"])
                return cluster
            } catch {
                lastError = CommandFailed(command: "pg_ctl start on port \(port)", status: -1,
                                          output: "\(error)\n--- postgres log ---\n\(cluster.logTail())")
                ChildProcesses.remove(cluster.cleanupID)
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
        throw lastError!
    }

    func pgCtl(_ arguments: [String]) throws {
        try ChildProcesses.run(binDir + "/pg_ctl", ["-D", dataDirectory] + arguments, asUser: runAs)
    }

    /// The last part of the server log, printed when a test fails.
    public func logTail(maxBytes: Int = 16_000) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "(no postgres log at \(logPath))"
        return String(text.suffix(maxBytes))
    }

    /// Creates a fresh database with a unique name and returns its superuser DSN.
    public func createDatabase(prefix: String = "t") async throws -> (name: String, url: String) {
        let name = "\(prefix)_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        let admin = try await PGConnection.connect(url())
        try await admin.query("CREATE DATABASE \(quoteIdentifier(name))")
        return (name, url(database: name))
    }

    /// Drops a database and any replication slots that belong to it.
    ///
    /// A terminated walsender takes a moment to release its slot, and a relay still running
    /// may take it again, so this repeats terminate-then-drop until no slot of the database
    /// is left (bounded). A slot left behind would count against `max_replication_slots`,
    /// which the suites running in parallel share.
    public func dropDatabase(_ name: String) async throws {
        let admin = try await PGConnection.connect(url())
        let deadline = Date().addingTimeInterval(15)
        while true {
            try await admin.query("""
                SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                WHERE database = $1 AND active_pid IS NOT NULL
                """, [.text(name)])
            let slots = try await admin.query("SELECT slot_name FROM pg_replication_slots WHERE database = $1",
                                              [.text(name)]).rows.map { try $0.string("slot_name") }
            if slots.isEmpty { break }
            var left = false
            for slot in slots {
                do { try await admin.query("SELECT pg_drop_replication_slot($1)", [.text(slot)]) }
                catch { left = true }   // still active: its walsender has not exited yet
            }
            if !left { break }
            guard Date() < deadline else {
                throw SlotsLeftBehind(database: name, slots: slots)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await admin.query("DROP DATABASE IF EXISTS \(quoteIdentifier(name)) WITH (FORCE)")
    }

    /// Immediate-mode restart: like a crash of the server, then recovery.
    public func restart(mode: String = "immediate") async throws {
        try await offPool { [self] in
            try pgCtl(["-m", mode, "-w", "stop"])
            try pgCtl(["-l", logPath, "-w", "-t", "60", "start"])
        }
    }

    /// Stops the server and removes its directory.
    public func stop() async {
        _ = try? await offPool { [self] in
            try? pgCtl(["-m", "immediate", "-w", "stop"])
            try? FileManager.default.removeItem(atPath: directory)
        }
        ChildProcesses.remove(cleanupID)
    }

    /// Path of a PostgreSQL binary such as `pg_recvlogical` or `pgbench`.
    public func binary(_ name: String) -> String { binDir + "/" + name }
}

/// A fresh temp directory for a cluster, owned by the server's OS user.
func makeClusterDirectory(owner runAs: String?) throws -> String {
    var template = Array((NSTemporaryDirectory() + "outbox-pg-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else {
        throw CommandFailed(command: "mkdtemp", status: errno, output: "cannot create a temp dir")
    }
    let directory = String(cString: made)
    chmod(directory, 0o755)
    if runAs != nil, let pw = getpwnam("postgres") {
        chown(directory, pw.pointee.pw_uid, pw.pointee.pw_gid)
    }
    return directory
}

func writeAsOwner(_ text: String, to path: String, owner: String?, mode: mode_t? = nil) throws {
    if let mode {
        // Created with the mode, so a key is never readable by others, even briefly.
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw CommandFailed(command: "write \(path)", status: errno, output: "cannot create the file")
        }
    } else {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }
    if owner != nil, let pw = getpwnam(owner!) {
        chown(path, pw.pointee.pw_uid, pw.pointee.pw_gid)
    }
}

/// A database the harness could not drop because its replication slots stayed in use.
public struct SlotsLeftBehind: Error, CustomStringConvertible {
    public let database: String
    public let slots: [String]
    public var description: String {
        "database \(database): replication slots \(slots.joined(separator: ", ")) stayed active for 15 s after their walsenders were terminated (a relay under test still running?)"
    }
}
