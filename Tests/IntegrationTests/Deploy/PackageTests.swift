import EphemeralServers
import Foundation
import Testing

/// `scripts/package`: a relay for hosts without a Swift toolchain or this project's library
/// builds. The memory figures in docs/benchmarks.md hold only with the libpq and librdkafka that
/// `scripts/setup` builds; with Debian's libpq5 the relay maps LDAP and GnuTLS again. The
/// package carries those libraries and points the binary at them, wherever it is unpacked.
@Suite("package")
struct PackageTests {
    /// Where the loader finds each library for `binary`, with no LD_LIBRARY_PATH.
    static func resolved(_ binary: String) async throws -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["LD_LIBRARY_PATH"] = nil
        let ldd = try await DeployKit.run(["/usr/bin/ldd", binary], environment: environment)
        #expect(ldd.status == 0, "\(ldd.output)")
        var libraries: [String: String] = [:]
        for line in ldd.output.split(separator: "\n") {
            let fields = line.split(whereSeparator: \.isWhitespace).map(String.init)
            if fields.count >= 3, fields[1] == "=>" { libraries[fields[0]] = URL(fileURLWithPath: fields[2]).standardizedFileURL.path }
        }
        return libraries
    }

    @Test("the package holds the relay with its libpq and librdkafka, and loads them from wherever it is unpacked")
    func packsAndLoadsItsLibraries() async throws {
        let output = NSTemporaryDirectory() + "package-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        // Packing gzips the debug binary (~90 MB): 36 s alone, over 60 s beside the other
        // suites on 2 cores.
        let packed = try await DeployKit.run(["/bin/bash", DeployKit.path("scripts/package"), "--binary", try relayBinary(), "--output", output],
                                             timeout: .seconds(240))
        #expect(packed.status == 0, "\(packed.output)")
        let tarball = try #require(packed.output.split(separator: "\n").last.map(String.init), "\(packed.output)")
        #expect(tarball.hasPrefix(output + "/outbox-relay-") && tarball.hasSuffix(".tar.gz") && FileManager.default.fileExists(atPath: tarball),
                "\(packed.output)")

        // Unpacked somewhere else: the binary's RUNPATH is relative to itself.
        let elsewhere = output + "/unpacked"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        let untar = try await DeployKit.run(["/bin/tar", "-C", elsewhere, "-xzf", tarball])
        #expect(untar.status == 0, "\(untar.output)")
        let root = elsewhere + "/" + URL(fileURLWithPath: tarball).lastPathComponent.replacingOccurrences(of: ".tar.gz", with: "")
        for file in ["bin/outbox-relay", "lib/libpq.so.5", "lib/librdkafka.so.1", "README.md", "docs/operations.md", "deploy/systemd/outbox-relay.service"] {
            #expect(FileManager.default.fileExists(atPath: root + "/" + file), "\(file) is missing from the package")
        }
        let libraries = try await Self.resolved(root + "/bin/outbox-relay")
        #expect(libraries["libpq.so.5"] == root + "/lib/libpq.so.5", "\(libraries)")
        #expect(libraries["librdkafka.so.1"] == root + "/lib/librdkafka.so.1", "\(libraries)")
        let unwanted = libraries.keys.filter { library in LoadedLibrariesTests.unwanted.contains { library.hasPrefix($0) } }
        #expect(unwanted.isEmpty, "the packaged relay loads \(unwanted)")
        let version = try await DeployKit.run([root + "/bin/outbox-relay", "--version"])
        #expect(version.status == 0 && !version.output.isEmpty, "\(version.output)")
    }

    @Test("a wrong argument or a missing binary fails with the fix, before anything is packed")
    func refusesBadArguments() async throws {
        let unknown = try await DeployKit.run(["/bin/bash", DeployKit.path("scripts/package"), "--frobnicate"])
        #expect(unknown.status == 64 && unknown.output.contains("unknown argument '--frobnicate'") && unknown.output.contains("Fix:"), "\(unknown.output)")
        let missing = try await DeployKit.run(["/bin/bash", DeployKit.path("scripts/package"), "--binary", "/nonexistent/outbox-relay"])
        #expect(missing.status == 66 && missing.output.contains("/nonexistent/outbox-relay is not an executable") && missing.output.contains("Fix:"),
                "\(missing.output)")
    }
}
