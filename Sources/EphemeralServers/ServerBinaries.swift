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
        "\(binary) was not found (looked in: \(lookedIn.joined(separator: ", "))). Run `bash scripts/setup` from the repository root to install PostgreSQL 15, librdkafka and the Tansu broker."
    }
}

/// Locates the PostgreSQL 15 server binaries and the Tansu broker.
public enum ServerBinaries {
    /// Directory with `initdb`, `pg_ctl`, `postgres`, `pg_recvlogical`, `pgbench`.
    /// Override: `OUTBOX_PG_BIN`. Default: `/usr/lib/postgresql/15/bin`.
    public static func postgresBinDir() throws -> String {
        let env = ProcessInfo.processInfo.environment
        let candidates = [env["OUTBOX_PG_BIN"], "/usr/lib/postgresql/15/bin"].compactMap { $0 }
        for dir in candidates where FileManager.default.isExecutableFile(atPath: dir + "/initdb") {
            return dir
        }
        throw ServerBinaryMissing(binary: "PostgreSQL 15 initdb", lookedIn: candidates)
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
