import Foundation

/// A CA, a server certificate it signed for one host name, and a second CA that signed
/// nothing, made with `openssl` in a fresh temp dir when a test runs. No key is ever
/// committed; `remove()` deletes the directory.
struct TestCertificates: Sendable {
    let directory: String
    let hostName: String
    /// The CA that signed the server certificate.
    var caPath: String { directory + "/ca.crt" }
    /// A CA that did not sign it: trusting only this one must fail verification.
    var otherCAPath: String { directory + "/other-ca.crt" }
    var serverCertificatePath: String { directory + "/server.crt" }
    var serverKeyPath: String { directory + "/server.key" }
    var serverCertificate: String { (try? String(contentsOfFile: serverCertificatePath, encoding: .utf8)) ?? "" }
    var serverKey: String { (try? String(contentsOfFile: serverKeyPath, encoding: .utf8)) ?? "" }

    /// - Parameters:
    ///   - hostName: the DNS name (subjectAltName) in the server certificate.
    ///   - ipAddress: an IP address the certificate names too, if any.
    static func make(hostName: String, ipAddress: String? = nil) async throws -> TestCertificates {
        let directory = NSTemporaryDirectory() + "outbox-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        let certificates = TestCertificates(directory: directory, hostName: hostName)
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ["ca", "other-ca"] {
            try await openssl(["req", "-x509"] + key + ["-keyout", "\(ca).key", "-out", "\(ca).crt", "-days", "2",
                         "-subj", "/CN=outbox-relay test \(ca)"], in: directory)
        }
        try await openssl(["req"] + key + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=\(hostName)"], in: directory)
        try "subjectAltName=DNS:\(hostName)\(ipAddress.map { ",IP:\($0)" } ?? "")\n".write(toFile: directory + "/server.ext", atomically: true, encoding: .utf8)
        try await openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "server.crt", "-days", "2", "-extfile", "server.ext"], in: directory)
        return certificates
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    private static func openssl(_ arguments: [String], in directory: String) async throws {
        let (status, output) = try await runTool(["/usr/bin/openssl"] + arguments, in: directory)
        guard status == 0 else {
            throw CheckerError("openssl \(arguments.joined(separator: " ")) exited with \(status): \(output)")
        }
    }
}
