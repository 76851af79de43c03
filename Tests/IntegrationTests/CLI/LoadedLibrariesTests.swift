import EphemeralServers
import Foundation
import Testing

/// What the loader maps into every relay. Each library costs resident pages, and some run
/// code when loaded; these ones serve nothing the relay offers (docs/benchmarks.md, "Memory"):
/// libcurl came with Foundation's URLSession through the old HTTP library, LDAP (and through
/// Debian's libldap, GnuTLS and its p11-kit, nettle and gmp) with Debian's libpq, Cyrus SASL
/// (every SASL plugin and Berkeley DB, loaded by librdkafka's global init) with a librdkafka
/// built for Kerberos. `scripts/setup` builds libpq and librdkafka without them.
@Suite("loaded libraries")
struct LoadedLibrariesTests {
    static let unwanted = ["libcurl", "libldap", "liblber", "libgnutls", "libp11-kit", "libsasl2", "libdb-"]

    @Test("the relay binary loads no libcurl, LDAP, GnuTLS or Cyrus SASL")
    func noUnwantedLibraries() async throws {
        let log = NSTemporaryDirectory() + "ldd-\(UUID().uuidString).txt"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let ldd = try ChildProcess(["/usr/bin/ldd", try relayBinary()], outputPath: log)
        #expect(await ldd.waitForExit() == 0, "\(ldd.output)")
        let libraries = ldd.output.split(separator: "\n").compactMap { $0.split(whereSeparator: \.isWhitespace).first.map(String.init) }
        #expect(libraries.contains { $0.hasPrefix("libpq.so") } && libraries.contains { $0.hasPrefix("librdkafka.so") }, "\(ldd.output)")
        let found = libraries.filter { library in Self.unwanted.contains { library.hasPrefix($0) } }
        #expect(found.isEmpty, "loaded: \(found); run bash scripts/setup (it rebuilds libpq and librdkafka without them). ldd: \(ldd.output)")
    }
}
