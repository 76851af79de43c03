import ArgumentParser
import Foundation
import KafkaClient
import Logging
import PostgresClient
import Relay
import ServiceLifecycle

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the relay (stream or notify capture) and the sweeper, with /metrics, /healthz and /readyz.",
        discussion: """
            SIGTERM or SIGINT: finish the transaction in hand, wait for its deliveries, confirm the LSN, exit 0; all \
            within drain-timeout (default 30s), broker up or down. If drain-timeout runs out first, the events not yet \
            acknowledged stay unconfirmed (the next start publishes them again), the log says how many, and the exit \
            status is 75 (EX_TEMPFAIL).
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var set: SetOptions

    @Option(help: "stream (replication connection, default) or notify (LISTEN + SQL slot reads).")
    var capture: String?
    @Option(help: "Logical replication slot (default outbox_relay).")
    var slot: String?
    @Option(help: "Run one shard, I/N (0-based index of N, as created by `migrate --shards N`): slot <slot>_I, publication <publication>_I_of_N.")
    var shard: String?
    @Option(name: .customLong("create-slot"), help: "Create the slot and publication when missing (default true).")
    var createSlot: String?
    @Option(name: .customLong("sweeper-interval"), help: "How often the sweeper re-sends stuck INIT rows (default 20s).")
    var sweeperInterval: String?
    @Option(name: .customLong("sweeper-min-age"), help: "Re-send INIT rows older than this (default 10s).")
    var sweeperMinAge: String?
    @Flag(name: .customLong("print-config"), help: "Print the resolved configuration (secrets redacted) and exit.")
    var printConfig = false

    /// sysexits EX_TEMPFAIL: stopped at drain-timeout with events unacknowledged.
    static let exitUnacknowledgedAtStop: Int32 = 75

    func run() async throws {
        var extra = try set.flags().merging(http.flags) { $1 }
        extra["capture"] = capture ?? extra["capture"]
        extra["slot"] = slot ?? extra["slot"]
        extra["create-slot"] = createSlot ?? extra["create-slot"]
        extra["shard"] = shard ?? extra["shard"]
        extra["sweeper-interval"] = sweeperInterval ?? extra["sweeper-interval"]
        extra["sweeper-min-age"] = sweeperMinAge ?? extra["sweeper-min-age"]
        let resolved = ResolvedConfiguration(settings: try connection.settings(extra: extra))
        if printConfig { print(resolved.redactedDescription); return }
        Observability.bootstrap(logLevel: try resolved.logLevel())
        let logger = Logger(label: "outbox-relay")
        let relayConfiguration = try resolved.relay()
        let (policy, retention) = try resolved.sweeper()
        let (host, port) = try resolved.http()
        logger.info("starting relay", metadata: ["config": "\n\(resolved.redactedDescription)"])
        try await Preflight.check(databaseURL: relayConfiguration.databaseURL, kafka: relayConfiguration.kafka, logger: logger)

        let relay = try RelayService(configuration: relayConfiguration, sweeper: policy, retention: retention, logger: logger)
        // The HTTP endpoints first: ServiceGroup stops services in reverse order, so they
        // keep answering while the work drains.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if port != 0 {
            let server = try await HTTPEndpoints(host: host, port: port, health: relay.health, extraReady: { true }).makeServer()
            services.append(.init(service: HTTPRunner(server: server, address: "\(host):\(port)")))
        }
        services.append(.init(service: relay, successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        if let summary = relay.stopSummary, summary.unacknowledged > 0 {
            throw ExitCode(Self.exitUnacknowledgedAtStop)
        }
    }
}

/// Fails fast, with the host and port and the fix, when PostgreSQL or Kafka is
/// unreachable at start. (Outages after start are retried, never fatal.)
enum Preflight {
    static func check(databaseURL: String, kafka: KafkaConfiguration, logger: Logger) async throws {
        do {
            let connection = try await PGConnection.connect(databaseURL, connectTimeoutSeconds: 10)
            _ = try await connection.query("SELECT 1")
        } catch {
            throw CLIError("PostgreSQL is not reachable: \(error). Fix: check database-url, that the server runs, and pg_hba.conf.")
        }
        let producer = try KafkaProducer(configuration: kafka, logger: logger, onDelivery: { _ in })
        // rd_kafka_destroy waits for librdkafka's threads (~100 ms): let it finish while the
        // relay starts, instead of delaying the start.
        defer { Thread.detachNewThread { producer.close(timeout: .zero) } }
        try await producer.checkConnectivity(timeout: .seconds(10))
    }
}
