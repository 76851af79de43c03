import EphemeralServers

/// Tests of features PostgreSQL added later (failover slots in 17, idle slot invalidation
/// in 18) run in scripts/test's second pass, on the newest major. The first pass leaves
/// them out by name (`--skip`); run by hand on an older server they fail with how to run
/// them, rather than pass without testing anything.
func requirePostgres(_ major: Int, _ cluster: PostgresCluster, for feature: String) throws {
    guard cluster.majorVersion >= major else {
        throw CheckerError("\(feature) needs PostgreSQL \(major)+, but the test server is \(cluster.majorVersion). Fix: run with \(ServerBinaries.postgresBinVariable)=\(ServerBinaries.newestPostgresBinDir) (bash scripts/test does in its second pass; bash scripts/setup installs it).")
    }
}
