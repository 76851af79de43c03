#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Foundation

/// A server binary the harness needs is not installed. Names the binary and the fix.
public struct ServerBinaryMissing: Error, CustomStringConvertible {
    public let binary: String
    public let lookedIn: [String]
    public var description: String {
        "\(binary) was not found (looked in: \(lookedIn.joined(separator: ", "))). Run `bash scripts/setup` from the repository root to install PostgreSQL 15 and \(ServerBinaries.newestPostgresMajor), librdkafka and the Tansu broker."
    }
}

/// Locates the PostgreSQL server binaries and the Tansu broker.
public enum ServerBinaries {
    /// The one setting that picks the PostgreSQL the tests run on: a `bin` directory with
    /// `initdb`, `pg_ctl`, `postgres`, `pg_basebackup`, `pg_recvlogical`, `pgbench`.
    public static let postgresBinVariable = "OUTBOX_PG_BIN"
    /// Default: Debian 12's PostgreSQL 15.
    public static let debianPostgresBinDir = "/usr/lib/postgresql/15/bin"
    /// The newest major `scripts/setup` installs (from PyPI), and where.
    public static let newestPostgresMajor = 18
    public static let newestPostgresBinDir = "/opt/outbox-relay/postgresql-18/server-bin"

    /// The directory `OUTBOX_PG_BIN` names, or Debian's 15 when it is unset. A set variable
    /// is never replaced by the default: a matrix run on 18 that silently ran on 15 would
    /// prove nothing.
    public static func postgresBinDir(environment: [String: String]? = nil) throws -> String {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let explicit = environment[postgresBinVariable].flatMap { $0.isEmpty ? nil : $0 }
        let dir = explicit ?? debianPostgresBinDir
        guard FileManager.default.isExecutableFile(atPath: dir + "/initdb") else {
            throw ServerBinaryMissing(binary: explicit == nil ? "PostgreSQL 15 initdb" : "initdb (\(postgresBinVariable)=\(dir))",
                                      lookedIn: [dir])
        }
        return dir
    }

    /// The major version of the server in `binDir`, from `postgres --version`
    /// ("postgres (PostgreSQL) 18.6" gives 18).
    public static func postgresMajorVersion(binDir: String) throws -> Int {
        let output = try ChildProcesses.run(binDir + "/postgres", ["--version"], asUser: nil)
        guard let major = parseMajorVersion(output) else {
            throw CommandFailed(command: binDir + "/postgres --version", status: 0, output: "no version in: \(output)")
        }
        return major
    }

    static func parseMajorVersion(_ text: String) -> Int? {
        guard let range = text.range(of: "(PostgreSQL) ") else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }

    /// The Tansu broker. Override: `TANSU_BIN`. Default: `tansu` on PATH, then
    /// `/usr/local/bin/tansu`, then `~/.local/bin/tansu` (all placed by `scripts/setup`).
    public static func tansu() throws -> String {
        let env = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let explicit = env["TANSU_BIN"] { candidates.append(explicit) }
        for dir in (env["PATH"] ?? "").split(separator: ":") { candidates.append("\(dir)/tansu") }
        candidates.append("/usr/local/bin/tansu")
        if let home = env["HOME"] { candidates.append("\(home)/.local/bin/tansu") }
        for path in candidates where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw ServerBinaryMissing(binary: "tansu", lookedIn: Array(Set(candidates)).sorted())
    }
}
