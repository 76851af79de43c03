import EphemeralServers
import Foundation

/// A real PgBouncer (Debian's `pgbouncer`, installed by scripts/setup) in front of a test
/// PostgreSQL on a free loopback port, started as a child process: notify mode is pitched
/// at relays behind a pooler, and what a pooler keeps of a session is only known by trying.
/// Trust authentication on loopback; the user list names the test superuser only.
struct PgBouncer {
    let port: Int
    let directory: String
    let process: ChildProcess

    static let executable = "/usr/sbin/pgbouncer"

    /// Pools every database of the PostgreSQL on `upstreamPort` in `poolMode`
    /// ("transaction", "session").
    static func start(upstreamPort: Int, poolMode: String) async throws -> PgBouncer {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw CheckerError("\(executable) is missing: run scripts/setup (it installs Debian's pgbouncer)")
        }
        let directory = NSTemporaryDirectory() + "pgbouncer-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        let port = freeLoopbackPort()
        try "\"postgres\" \"\"\n".write(toFile: directory + "/userlist.txt", atomically: true, encoding: .utf8)
        // No unix socket, no log or pid file: everything it says goes to the captured output.
        try """
            [databases]
            * = host=127.0.0.1 port=\(upstreamPort)
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir =
            auth_type = trust
            auth_file = \(directory)/userlist.txt
            pool_mode = \(poolMode)
            max_client_conn = 200
            default_pool_size = 20
            ignore_startup_parameters = extra_float_digits,options
            """.write(toFile: directory + "/pgbouncer.ini", atomically: true, encoding: .utf8)
        // PgBouncer refuses to run as root; -u drops to the user PostgreSQL runs as.
        let user = geteuid() == 0 ? ["-u", "postgres"] : []
        let process = try ChildProcess([executable] + user + [directory + "/pgbouncer.ini"], outputPath: directory + "/pgbouncer.log")
        guard await eventually(timeout: .seconds(15), { isLoopbackPortOpen(port) }) else {
            process.signal(SIGKILL)
            throw CheckerError("pgbouncer did not listen on \(port): \(process.output.suffix(2_000))")
        }
        return PgBouncer(port: port, directory: directory, process: process)
    }

    /// `url` (a test database's superuser DSN) pointed at this pooler instead.
    func url(replacingPortOf url: String, upstreamPort: Int) -> String {
        url.replacingOccurrences(of: "127.0.0.1:\(upstreamPort)", with: "127.0.0.1:\(port)")
    }

    func stop() async {
        process.signal(SIGTERM)
        _ = await process.waitForExit(timeout: .seconds(10))
        try? FileManager.default.removeItem(atPath: directory)
    }
}
