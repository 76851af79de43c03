import ArgumentParser
import Foundation
import KafkaClient
import Logging
import Metrics
import PGOutput
import PostgresClient
import Schema
import Relay
import ServiceLifecycle

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the relay (stream or notify capture) and the sweeper, with /metrics, /healthz and /readyz.",
        discussion: """
            SIGTERM or SIGINT: finish the transaction in hand, wait for its deliveries, confirm the LSN, exit 0; all \
            within drain-timeout (default \(SettingsCatalog.spec("drain-timeout")!.defaultText)), broker up or down. If drain-timeout runs out first, the events not yet \
            acknowledged stay unconfirmed (the next start publishes them again), the log says how many, and the exit \
            status is 75 (EX_TEMPFAIL).

            \(ExitStatus.helpText)
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var set: SetOptions

    @Option(help: SettingsCatalog.help("capture"))
    var capture: String?
    @Option(help: SettingsCatalog.help("slot"))
    var slot: String?
    @Option(help: SettingsCatalog.help("shard"))
    var shard: String?
    @Flag(name: .customLong("create-slot"), inversion: .prefixedNo, help: SettingsCatalog.help("create-slot"))
    var createSlot: Bool?
    @Flag(name: .customLong("sweeper"), inversion: .prefixedNo, help: SettingsCatalog.help("sweeper"))
    var sweeper: Bool?
    @Option(name: .customLong("sweeper-interval"), help: SettingsCatalog.help("sweeper-interval"))
    var sweeperInterval: String?
    @Option(name: .customLong("sweeper-min-age"), help: SettingsCatalog.help("sweeper-min-age"))
    var sweeperMinAge: String?
    @Option(name: .customLong("header-style"), help: "Record headers: outbox (default), debezium or cloudevents.")
    var headerStyle: String?
    @Flag(name: .customLong("print-config"), help: "Check the settings, print the resolved configuration (secrets redacted) and exit.")
    var printConfig = false

    func run() async throws {
        var extra = try set.flags().merging(http.flags) { $1 }
        extra["capture"] = capture ?? extra["capture"]
        extra["slot"] = slot ?? extra["slot"]
        extra["create-slot"] = createSlot.map { String($0) } ?? extra["create-slot"]
        extra["sweeper"] = sweeper.map { String($0) } ?? extra["sweeper"]
        extra["shard"] = shard ?? extra["shard"]
        extra["sweeper-interval"] = sweeperInterval ?? extra["sweeper-interval"]
        extra["sweeper-min-age"] = sweeperMinAge ?? extra["sweeper-min-age"]
        extra["header-style"] = headerStyle ?? extra["header-style"]
        let resolved = ResolvedConfiguration(settings: try connection.settings(extra: extra))
        if printConfig {
            // Checks every value as a start would (without connecting), so `--print-config`
            // doubles as a config-file check for deployment scripts.
            _ = try resolved.relay(); _ = try resolved.sweeper(); _ = try resolved.http(); _ = try resolved.logLevel(); _ = try resolved.logFormat()
            print(resolved.redactedDescription)
            return
        }
        Observability.bootstrap(logLevel: try resolved.logLevel(), format: try resolved.logFormat())
        let logger = Logger(label: "outbox-relay")
        let stopSignals = await StopSignals.trap(logger: logger)
        let relayConfiguration = try resolved.relay()
        let (policy, retention) = try resolved.sweeper()
        let (host, port) = try resolved.http()
        logger.info("starting relay", metadata: ["config": resolved.startupMetadata])
        try await Preflight.check(databaseURL: relayConfiguration.databaseURL, tables: relayConfiguration.tables,
                                  kafka: relayConfiguration.kafka, logger: logger)

        // SIGTERM ends within drain-timeout even if the teardown does not: `_exit`, not
        // `exit`, so no atexit handler or static destructor runs against librdkafka's and
        // libpq's still-running threads. Exit 75 as for a stop that left rows unconfirmed.
        let relay = try RelayService(configuration: relayConfiguration, sweeper: policy, retention: retention, logger: logger,
                                     onStopOverrun: { _exit(ExitStatus.unacknowledgedAtStop.rawValue) })
        // The HTTP endpoints first: ServiceGroup stops services in reverse order, so they
        // keep answering while the work drains.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if port != 0 {
            let server = try HTTPEndpoints(host: host, port: port, health: relay.health, notReadyBecause: { nil },
                                           readyGauge: Gauge(label: "outbox_relay_ready", dimensions: [("slot", relayConfiguration.slotName)])).makeServer()
            services.append(.init(service: HTTPRunner(server: server)))
        }
        services.append(.init(service: relay, successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup))
        try await stopSignals.run(ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger)))
        if let summary = relay.stopSummary, summary.unacknowledged > 0 {
            throw ExitCode(ExitStatus.unacknowledgedAtStop.rawValue)
        }
    }
}
