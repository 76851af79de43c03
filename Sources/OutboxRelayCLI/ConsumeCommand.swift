import ArgumentParser
import Consumers
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Metrics
import ServiceLifecycle

struct Consume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the BOOK_SAVE / PAYMENT_SAVE consumers: apply each effect exactly once, dead-letter poison messages.",
        discussion: """
            SIGTERM or SIGINT: apply and commit the batch in hand, leave the group, exit 0, within drain-timeout \
            (default \(SettingsCatalog.defaultText("drain-timeout"))). If the database or the broker holds the stop longer, \
            the process exits 75 at drain-timeout; a batch whose offsets were not committed is delivered again and deduplicated.

            \(ExitStatus.helpText)
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var set: SetOptions

    @Option(name: .customLong("group-id"), help: SettingsCatalog.help("group-id"))
    var groupID: String?
    @Option(name: .customLong("batch-size"), help: SettingsCatalog.help("batch-size"))
    var batchSize: Int?
    @Flag(name: .customLong("print-config"), help: "Check the settings, print the resolved configuration (secrets redacted) and exit.")
    var printConfig = false

    func run() async throws {
        var extra = try set.flags().merging(http.flags) { $1 }
        extra["group-id"] = groupID ?? extra["group-id"]
        extra["batch-size"] = batchSize.map(String.init) ?? extra["batch-size"]
        let resolved = ResolvedConfiguration(settings: try connection.settings(extra: extra))
        if printConfig {
            _ = try resolved.consumer(); _ = try resolved.http(); _ = try resolved.logLevel(); _ = try resolved.logFormat()
            print(resolved.redactedDescription)
            return
        }
        Observability.bootstrap(logLevel: try resolved.logLevel(), format: try resolved.logFormat())
        let logger = Logger(label: "outbox-consumers")
        let stopSignals = await StopSignals.trap(logger: logger)
        let configuration = try resolved.consumer()
        let (host, port) = try resolved.http()
        logger.info("starting consumers", metadata: ["config": resolved.startupMetadata])
        try await Preflight.check(databaseURL: configuration.databaseURL, tables: configuration.tables,
                                  kafka: configuration.kafka, logger: logger)
        // As in `run`: `_exit`, not `exit`, so a stuck teardown's atexit work cannot hold it.
        let consumer = try ConsumerService(configuration: configuration, logger: logger,
                                           onStopOverrun: { _exit(ExitStatus.unacknowledgedAtStop.rawValue) })
        // The HTTP endpoints first: ServiceGroup stops services in reverse order, so they
        // keep answering while the work drains.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if port != 0 {
            let server = try HTTPEndpoints(host: host, port: port, health: nil, notReadyBecause: { [consumer] in consumer.stalledReason },
                                           readyGauge: Gauge(label: "outbox_consumer_ready")).makeServer()
            services.append(.init(service: HTTPRunner(server: server)))
        }
        services.append(.init(service: ConsumerRunner(consumer: consumer), successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup))
        try await stopSignals.run(ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger)))
    }
}
