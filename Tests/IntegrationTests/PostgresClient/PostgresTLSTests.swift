import EphemeralServers
import Foundation
import PostgresClient
import Testing

/// PostgreSQL over TLS, for real: a throwaway server with `ssl = on` that accepts only
/// `hostssl` connections, and a CA plus server certificate made with `openssl` when the
/// test runs. `sslmode=verify-full` with the right CA and host name works for the library,
/// the relay (including its replication connection) and the consumers; a wrong host name,
/// a CA that did not sign the certificate, `sslmode=disable` and a wrong password are each
/// refused by the library and by `run`, `consume` and `status`, with an error naming one
/// cause and one fix, and exit 78 (EX_CONFIG: the server answered; retrying cannot help).
@Suite("PostgreSQL TLS")
struct PostgresTLSTests {
    /// The name in the server certificate. It resolves nowhere: URLs pin the address with
    /// `hostaddr=127.0.0.1`, and libpq checks the certificate against `host`.
    static let hostName = "db.outbox.test"

    /// The refusals every client must report, with the phrases that name cause and fix.
    enum Refusal: CaseIterable {
        case wrongHostName, wrongCA, unencrypted, wrongPassword

        var expectedPhrases: [String] {
            switch self {
            case .wrongHostName: ["does not match host name", "not issued for the host name"]
            case .wrongCA: ["certificate verify failed", "sslrootcert"]
            case .unencrypted: ["no encryption", "sslmode=verify-full"]
            case .wrongPassword: ["password authentication failed", "check the user and password"]
            }
        }
    }

    /// A role that must log in with a password (scram-sha-256 in pg_hba.conf).
    static let passwordRole = "tls_app"
    static let password = "right-Secret-7"
    static let wrongPassword = "wrong-Secret-9"

    struct TLSServer: Sendable {
        let cluster: PostgresCluster
        let certificates: TestCertificates
        let database: String

        /// `sslmode=verify-full` against the right CA and host name.
        var goodURL: String { url(host: PostgresTLSTests.hostName, "sslmode=verify-full", "sslrootcert=\(certificates.caPath)") }

        func url(for refusal: Refusal) -> String {
            switch refusal {
            case .wrongHostName: url(host: "127.0.0.1", "sslmode=verify-full", "sslrootcert=\(certificates.caPath)")
            case .wrongCA: url(host: PostgresTLSTests.hostName, "sslmode=verify-full", "sslrootcert=\(certificates.otherCAPath)")
            case .unencrypted: url(host: PostgresTLSTests.hostName, "sslmode=disable")
            case .wrongPassword: url(user: "\(PostgresTLSTests.passwordRole):\(PostgresTLSTests.wrongPassword)", host: PostgresTLSTests.hostName,
                                     "sslmode=verify-full", "sslrootcert=\(certificates.caPath)")
            }
        }

        private func url(user: String = "postgres", host: String, _ options: String...) -> String {
            "postgres://\(user)@\(host):\(cluster.port)/\(database)?" + (["hostaddr=127.0.0.1"] + options).joined(separator: "&")
        }
    }

    /// Starts a TLS-only server with a fresh database, runs `body`, removes everything.
    func withTLSServer<T: Sendable>(_ body: (TLSServer) async throws -> T) async throws -> T {
        let certificates = try await TestCertificates.make(hostName: Self.hostName)
        defer { certificates.remove() }
        let cluster = try await PostgresCluster.start(
            extraSettings: ["ssl": "on", "ssl_cert_file": "'server.crt'", "ssl_key_file": "'server.key'"],
            hbaLines: ["local all all trust",
                       "hostssl all \(Self.passwordRole) 127.0.0.1/32 scram-sha-256",
                       "hostssl all all 127.0.0.1/32 trust",
                       "hostssl replication all 127.0.0.1/32 trust",
                       "local replication all trust"],
            dataFiles: ["server.crt": certificates.serverCertificate, "server.key": certificates.serverKey])
        do {
            let database = try await cluster.createDatabase(prefix: "tls")  // itself over TLS (sslmode=prefer)
            let server = TLSServer(cluster: cluster, certificates: certificates, database: database.name)
            let admin = try await PGConnection.connect(server.goodURL)
            _ = try await admin.query("CREATE ROLE \(Self.passwordRole) LOGIN PASSWORD '\(Self.password)'")
            let result = try await body(server)
            await cluster.stop()
            return result
        } catch {
            print("--- test failed: \(error)\n--- postgres log (tail) ---\n\(cluster.logTail(maxBytes: 6000))")
            await cluster.stop()
            throw error
        }
    }

    @Test("library: verify-full with the right CA and host name connects over TLS; each misconfiguration is refused naming its cause")
    func library() async throws {
        try await withTLSServer { server in
            let connection = try await PGConnection.connect(server.goodURL)
            let ssl = try await connection.query("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").single()
            #expect(try ssl.bool("ssl"), "the connection is encrypted")
            #expect(try ssl.string("version").hasPrefix("TLS"))

            for refusal in Refusal.allCases {
                let error = await #expect(throws: PGError.self, "\(refusal) must be refused") {
                    try await PGConnection.connect(server.url(for: refusal))
                }
                #expect(error?.code == .connectionFailed)
                let text = "\(error.map { "\($0)" } ?? "")"
                for phrase in refusal.expectedPhrases { #expect(text.contains(phrase), "\(refusal): \(text)") }
            }
        }
    }

    @Test("status, run and consume refuse a wrong host name, a wrong CA, sslmode=disable and a wrong password with one cause and one fix, exiting 78")
    func cliRefusals() async throws {
        try await withTLSServer { server in
            let broker = try await TansuBroker.start()
            for refusal in Refusal.allCases {
                let url = server.url(for: refusal)
                let commands: [[String]] = [
                    ["status", "--database-url", url, "--kafka-bootstrap-servers", broker.bootstrapServers],
                    ["run", "--database-url", url, "--kafka-bootstrap-servers", broker.bootstrapServers, "--http-port", "0"],
                    ["consume", "--database-url", url, "--kafka-bootstrap-servers", broker.bootstrapServers, "--http-port", "0"],
                ]
                for command in commands {
                    let result = try await runCLI(command)
                    // 78, not 69: "unavailable" made a supervisor retry a configuration error forever.
                    #expect(result.status == 78, "\(command[0]) with \(refusal) exited \(result.status): \(result.output.suffix(1_500))")
                    #expect(result.output.components(separatedBy: "Fix:").count == 2, "one fix: \(result.output.suffix(1_500))")
                    #expect(!result.output.contains("not reachable"), "the server answered: \(result.output.suffix(1_500))")
                    #expect(!result.output.contains(PostgresTLSTests.wrongPassword), "the password leaked: \(result.output.suffix(1_500))")
                    for phrase in refusal.expectedPhrases {
                        #expect(result.output.contains(phrase), "\(command[0]) with \(refusal): \(result.output.suffix(1_500))")
                    }
                }
            }
            await broker.stop()
        }
    }

    @Test("run (stream mode) and consume over verify-full TLS carry bookings end to end; status passes; the walsender connection is encrypted")
    func cliOverTLS() async throws {
        try await withTLSServer { server in
            let broker = try await TansuBroker.start()
            let ctx = TestContext(postgres: server.cluster, databaseName: server.database, databaseURL: server.goodURL, broker: broker)
            let db = try await ctx.migrated()
            let relayPort = freeLoopbackPort()
            let relay = try startRelayProcess(ctx, logName: "tls-relay", httpPort: relayPort)
            #expect(await eventually { (await LoopbackHTTP.get(port: relayPort, path: "/readyz"))?.status == 200 },
                    "relay never ready: \(relay.output.suffix(2_000))")
            let walsenderEncrypted = try await db.query("""
                SELECT count(*) AS n, coalesce(bool_and(s.ssl), false) AS ssl
                FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)
                """).single()
            #expect(try walsenderEncrypted.int("n") == 1 && walsenderEncrypted.bool("ssl"), "the replication connection uses TLS")

            _ = try await bookSeats(db, count: 10)
            let log = NSTemporaryDirectory() + "consume-\(server.database).log"
            let consume = try ChildProcess([try relayBinary(), "consume", "--database-url", server.goodURL,
                                            "--kafka-bootstrap-servers", broker.bootstrapServers, "--http-port", "0",
                                            "--log-level", "notice", "--set", "kafka-properties=allow.auto.create.topics=true"],
                                           outputPath: log)
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")) == 10
            }, "\(consume.output.suffix(2_000))")

            let status = try await runCLI(["status", "--database-url", server.goodURL, "--kafka-bootstrap-servers", broker.bootstrapServers,
                                           "--slot", ctx.slotName])
            #expect(status.status == 0, "\(status.output)")
            #expect(status.output.contains("slot \(ctx.slotName): confirmed"), "\(status.output)")

            #expect(await consume.terminate(timeout: .seconds(30)) == 0, "\(consume.output.suffix(1_500))")
            #expect(await relay.terminate(timeout: .seconds(30)) == 0, "\(relay.output.suffix(1_500))")
            await broker.stop()
        }
    }
}
