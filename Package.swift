// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

// Resident memory of the relay binary (docs/benchmarks.md, "Memory"): the
// toolchain's ld.lld packs the ~2 MiB of relative relocations that the loader reads at every
// start into ~16 KiB (DT_RELR, glibc >= 2.36), and without -export-dynamic (the static
// stdlib's default) ~9,800 public symbols of the package's own modules stay out of the
// dynamic symbol table the loader searches. Together ~2.5 MiB fewer resident pages, with
// the binary still position-independent (ASLR kept).
let relayLinkerFlags: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                  "-Xlinker", "--no-export-dynamic"], .when(platforms: [.linux])),
]

let package = Package(
    name: "outbox-relay",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "outbox-relay", targets: ["OutboxRelayCLI"]),
        .executable(name: "outbox-bench", targets: ["OutboxBench"]),
        .library(name: "Schema", targets: ["Schema"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The bench's latency percentiles.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // C shims: module maps name the library and the pkg-config package; the
        // providers tell a user which Debian package is missing.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CEventFD"),
        // Threads for blocking C work, the eventfd that ends their polls from another thread,
        // and the stop watchdog: shared by the libpq and librdkafka layers and the services.
        .target(name: "Threading", dependencies: ["CEventFD"], swiftSettings: strict),

        // Pure pgoutput decoding, LSNs and streamed-transaction buffering. No I/O but temp files.
        .target(name: "PGOutput", swiftSettings: strict),
        // Pure relay logic: LSN tracker, in-flight window, retry/backoff and sweeper policy,
        // topic rules, outbox row mapping. Unit-tested without servers.
        .target(name: "RelayCore", dependencies: ["PGOutput"], swiftSettings: strict),
        // The CLI's settings resolution (flags, environment, file, defaults) and its parsers
        // of durations and sizes. Pure (RelayCore only for its quoting of hostile text); the
        // catalog of names and defaults is the CLI's.
        .target(name: "CLISettings", dependencies: ["RelayCore"], swiftSettings: strict),
        // libpq: queries, LISTEN/NOTIFY, the replication stream. C stays behind this seam.
        .target(
            name: "PostgresClient",
            dependencies: ["CLibPQ", "PGOutput", "Threading", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // librdkafka: producer, consumer, configuration, errors, the mock cluster.
        .target(
            name: "KafkaClient",
            dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "Schema",
            dependencies: ["PostgresClient", "PGOutput"],
            exclude: ["README.md"],
            resources: [.embedInCode("Migrations"), .embedInCode("roles.sql"), .embedInCode("outbox-table.sql"),
                        .embedInCode("outbox-table-roles.sql")],
            swiftSettings: strict),
        .target(
            name: "Relay",
            dependencies: [
                "PGOutput", "RelayCore", "PostgresClient", "KafkaClient", "Schema", "Threading",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        .target(
            name: "Consumers",
            dependencies: [
                "PostgresClient", "KafkaClient", "Schema", "Threading", "PGOutput",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // /metrics, /healthz and /readyz: a poll loop on its own thread (see EndpointServer for why not a library).
        .target(name: "HTTPEndpoint", dependencies: ["Threading"], swiftSettings: strict),
        // Throwaway PostgreSQL clusters and Tansu brokers, for tests, the demo and the bench.
        .target(
            name: "EphemeralServers",
            dependencies: ["PostgresClient", .product(name: "Logging", package: "swift-log")],
            exclude: ["README.md"],
            swiftSettings: strict),
        .executableTarget(
            name: "OutboxRelayCLI",
            dependencies: [
                "Relay", "RelayCore", "Consumers", "Schema", "EphemeralServers", "HTTPEndpoint", "Threading",
                "CLISettings", "KafkaClient", "PostgresClient", "PGOutput",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict,
            linkerSettings: relayLinkerFlags),
        .executableTarget(
            name: "OutboxBench",
            dependencies: [
                "Relay", "Consumers", "Schema", "EphemeralServers", "PostgresClient", "KafkaClient", "PGOutput",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict),

        .testTarget(name: "PGOutputTests", dependencies: ["PGOutput"], swiftSettings: strict),
        .testTarget(name: "RelayCoreTests", dependencies: ["RelayCore", "PGOutput", "Threading"], swiftSettings: strict),
        .testTarget(name: "CLISettingsTests", dependencies: ["CLISettings"], swiftSettings: strict),
        // Reads Package.swift and the sources: every import of a package module is declared.
        .testTarget(name: "PackageManifestTests", swiftSettings: strict),
        .testTarget(name: "ThreadingTests", dependencies: ["Threading"], swiftSettings: strict),
        .testTarget(name: "HTTPEndpointTests", dependencies: ["HTTPEndpoint", "EphemeralServers"], swiftSettings: strict),
        .testTarget(name: "EphemeralServersTests", dependencies: ["EphemeralServers"], swiftSettings: strict),
        .testTarget(name: "KafkaClientTests", dependencies: ["KafkaClient", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "PostgresClientTests", dependencies: ["PostgresClient"], swiftSettings: strict),
        // The bench's pure analysis (the shard scaling model); its measurements need the servers.
        .testTarget(name: "OutboxBenchTests", dependencies: ["OutboxBench"], swiftSettings: strict),
        // The outbox shape check and the outbox table template, without a server.
        .testTarget(name: "SchemaTests", dependencies: ["Schema", "PGOutput"], swiftSettings: strict),
        // Pure tests of the record contract: header styles, timestamps, consumer routing.
        .testTarget(name: "RecordContractTests", dependencies: ["Schema", "Consumers", "KafkaClient"], swiftSettings: strict),
        // Documentation checks that need no server: every relative Markdown link resolves.
        .testTarget(name: "DocumentationTests", swiftSettings: strict),
        // The consumers' pure core: the state machine, batch plans, failure classes.
        .testTarget(name: "ConsumersTests", dependencies: ["Consumers", "KafkaClient", "PGOutput", "Schema"], swiftSettings: strict),
        // The relay's server-free tests: the pure builders (dead-letter copies, rows read by SQL
        // as records), configuration guarantees, the delivery line's wake-ups.
        .testTarget(name: "RelayTests", dependencies: ["Relay", "RelayCore", "KafkaClient", "PGOutput", "PostgresClient", "Schema",
                                                       .product(name: "Logging", package: "swift-log")],
                    swiftSettings: strict),
        // The CLI's server-free tests: the settings catalog, flags, exit statuses, log lines.
        .testTarget(
            name: "OutboxRelayCLITests",
            dependencies: ["OutboxRelayCLI", "CLISettings", "Relay", "RelayCore", "Consumers", "HTTPEndpoint",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["PostgresClient", "KafkaClient", "Schema", "Relay", "RelayCore", "Consumers", "EphemeralServers", "PGOutput",
                           "OutboxRelayCLI", "CLISettings", "HTTPEndpoint", "Threading", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
    ]
)
