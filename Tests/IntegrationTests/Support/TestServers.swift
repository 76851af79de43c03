import EphemeralServers
import Foundation
import PostgresClient
import Schema

/// One PostgreSQL cluster for the whole test process (started on first use, stopped at
/// exit), shared explicitly: every test gets its own database from it, so tests never see
/// each other's rows, slots or publications. Kafka isolation is per test: Tansu starts in
/// milliseconds, so each test that needs a broker gets a fresh one.
actor SharedPostgres {
    static let shared = SharedPostgres()
    /// One start for every caller. Not a stored cluster checked before an `await`: the
    /// actor admits other callers while the first one awaits the start, and each of them
    /// started a cluster of its own (60 concurrent initdb runs at the start of the suite,
    /// which stalled the whole test process for half a minute).
    private var starting: Task<PostgresCluster, any Error>?

    func get() async throws -> PostgresCluster {
        if starting == nil {
            // A tiny logical_decoding_work_mem makes PostgreSQL stream every transaction over
            // 64 kB before commit, so relay tests exercise the streaming/spill path constantly.
            starting = Task { try await PostgresCluster.start(extraSettings: ["logical_decoding_work_mem": "64kB"]) }
        }
        return try await starting!.value
    }
}

/// What one integration test gets: its own database (superuser DSN) and, optionally, its
/// own broker. Tests needing a dedicated cluster (restarts, settings) start one themselves.
struct TestContext: Sendable {
    let postgres: PostgresCluster
    let databaseName: String
    let databaseURL: String
    let broker: TansuBroker?

    var bootstrapServers: String { broker!.bootstrapServers }

    func connect() async throws -> PGConnection { try await PGConnection.connect(databaseURL) }
}

/// Stops a dedicated cluster, or drops the test's database from the shared one. A drop that
/// fails leaves slots counting against the shared `max_replication_slots`, so it is said.
private func release(_ cluster: PostgresCluster, database: String, dedicated: Bool) async {
    if dedicated { await cluster.stop(); return }
    do { try await cluster.dropDatabase(database) } catch { print("--- teardown: could not drop \(database): \(error)") }
}

/// Runs `body` with a fresh database (and broker), tears them down afterwards, and prints
/// the server logs when the body throws so a failure can be diagnosed from CI output.
///
/// A test that keeps a transaction with an id open across a wait (a writer left
/// uncommitted, a row lock held) needs `dedicatedCluster`: creating a logical slot waits
/// for every such transaction in the whole cluster, so in the shared one it stalls the
/// start of every relay other tests start meanwhile (in a CI run two shards of another
/// test did not stream within 30 s).
func withTestContext<T: Sendable>(broker needsBroker: Bool = true, dedicatedCluster: Bool = false,
                                  _ body: (TestContext) async throws -> T) async throws -> T {
    let cluster = dedicatedCluster ? try await PostgresCluster.start() : try await SharedPostgres.shared.get()
    let database = try await cluster.createDatabase()
    let broker = needsBroker ? try await TansuBroker.start() : nil
    let context = TestContext(postgres: cluster, databaseName: database.name, databaseURL: database.url, broker: broker)
    do {
        let result = try await body(context)
        await broker?.stop()
        await release(cluster, database: database.name, dedicated: dedicatedCluster)
        return result
    } catch {
        print("--- test failed: \(error)\n--- postgres log (tail) ---\n\(cluster.logTail(maxBytes: 6000))")
        if let broker { print("--- tansu log (tail) ---\n\(broker.logTail(maxBytes: 3000))") }
        await broker?.stop()
        await release(cluster, database: database.name, dedicated: dedicatedCluster)
        throw error
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(30), every interval: Duration = .milliseconds(50),
                _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

extension TestContext {
    /// A connection to this test's database with every migration applied.
    func migrated() async throws -> PGConnection {
        let connection = try await connect()
        try await MigrationRunner().run(on: connection)
        return connection
    }
}

extension TestContext {
    /// The least-privilege roles of sql/roles.sql, named for this test's database (roles
    /// are cluster-wide: each test needs its own), the relay's with `relayPassword`.
    func leastPrivilegeRoles(on admin: PGConnection, relayPassword: String? = nil) async throws -> SchemaRoles {
        let roles = SchemaRoles(relayRole: "relay_\(databaseName)", consumerRole: "consumer_\(databaseName)")
        try await roles.apply(on: admin, relayPassword: relayPassword ?? "pw-\(databaseName)", consumerPassword: nil)
        return roles
    }

    /// Drops what `leastPrivilegeRoles` made: roles outlive the test's database.
    func drop(_ roles: SchemaRoles, on admin: PGConnection) async throws {
        try await admin.query("DROP OWNED BY \(quoteIdentifier(roles.relayRole)), \(quoteIdentifier(roles.consumerRole))")
        try await admin.query("DROP ROLE \(quoteIdentifier(roles.relayRole)), \(quoteIdentifier(roles.consumerRole))")
    }
}
