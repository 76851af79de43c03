import ArgumentParser
import CLISettings
import RelayCore

/// Every setting the CLI understands: its name (flag `--name`, environment
/// `OUTBOX_RELAY_NAME`, config-file key `name`), default, meaning and secrecy, declared
/// once here. Everything else is derived from or tested against this table:
/// - flag help texts call `SettingsCatalog.help(_:)`;
/// - `--print-config` walks `all` (and redacts `secret` ones);
/// - docs/configuration.md is generated from `all` (`ConfigurationReference`, `outbox-relay
///   settings`), and `SettingsCatalogTests` fails when the committed file differs;
/// - the typed defaults in `RelayConfiguration`, `ConsumerConfiguration`, `SweeperPolicy`
///   and `ResolvedConfiguration` must equal `defaultText` once parsed (`SettingsCatalogTests`
///   resolves once with nothing set and once with every default spelled out).
///
/// Adding a setting (e.g. `header-style`):
/// 1. one `SettingSpec` line below (name, default as a user would type it, help, `secret`);
/// 2. read it in `ResolvedConfiguration` (`settings.choice/int/duration/bytes/bool/string`)
///    into the library configuration, whose property default must equal `defaultText`;
/// 3. regenerate docs/configuration.md: `swift run outbox-relay settings > docs/configuration.md`;
/// 4. optionally a dedicated flag: `@Option(help: SettingsCatalog.help("name"))` in the
///    command, put into the `extra` flags dictionary; `--set name=value`, the environment
///    and the config file work without it.
struct SettingSpec {
    let name: String
    let defaultText: String
    let help: String
    var secret = false
}

enum SettingsCatalog {
    static let all: [SettingSpec] = [
        SettingSpec(name: "database-url", defaultText: "(required)", help: "libpq URL or key=value string; TLS options such as sslmode=verify-full pass through", secret: true),
        SettingSpec(name: "kafka-bootstrap-servers", defaultText: "127.0.0.1:9092", help: "Kafka brokers, host:port[,host:port]"),
        SettingSpec(name: "kafka-security-protocol", defaultText: "plaintext", help: "plaintext, ssl, sasl_plaintext or sasl_ssl"),
        SettingSpec(name: "kafka-sasl-mechanism", defaultText: "", help: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
        SettingSpec(name: "kafka-sasl-username", defaultText: "", help: "SASL user"),
        SettingSpec(name: "kafka-sasl-password", defaultText: "", help: "SASL password", secret: true),
        SettingSpec(name: "kafka-ssl-ca-location", defaultText: "", help: "CA bundle for broker TLS"),
        SettingSpec(name: "kafka-properties", defaultText: "", help: "extra librdkafka properties, comma-separated key=value (e.g. linger.ms=5)", secret: true),
        SettingSpec(name: "capture", defaultText: "stream", help: "stream (replication connection) or notify (LISTEN + SQL slot reads)"),
        SettingSpec(name: "slot", defaultText: "outbox_relay", help: "logical replication slot name"),
        SettingSpec(name: "publication", defaultText: "outbox_pub", help: "publication the slot decodes"),
        SettingSpec(name: "outbox-tables", defaultText: "public.outbox", help: "the outbox-shaped tables to capture (relay) or to update (consume), comma-separated schema.table; one slot and publication carry them all (install one with migrate --schema)"),
        SettingSpec(name: "shard", defaultText: "", help: "run one shard of a sharded capture, I/N (slot <slot>_I, publication <publication>_I_of_N; see migrate --shards)"),
        SettingSpec(name: "create-slot", defaultText: "true", help: "create the slot and publication when missing"),
        SettingSpec(name: "topic-routes", defaultText: "", help: "outbox topic to Kafka topic, comma-separated FROM=TO"),
        SettingSpec(name: "topic-allow-list", defaultText: "", help: "only these Kafka topics may be published (comma-separated; empty allows all)"),
        SettingSpec(name: "header-style", defaultText: "outbox", help: "record headers: outbox, debezium (outbox event router) or cloudevents (Kafka binding, binary mode)"),
        SettingSpec(name: "dead-letter-topic", defaultText: "outbox.dlq", help: "where unpublishable rows are copied"),
        SettingSpec(name: "max-in-flight", defaultText: "4000", help: "events published but not yet acknowledged before WAL reading pauses"),
        SettingSpec(name: "max-in-flight-bytes", defaultText: "8MiB", help: "bytes in flight before WAL reading pauses"),
        SettingSpec(name: "streaming-memory", defaultText: "1MiB", help: "memory for in-progress streamed transactions before spilling to disk"),
        SettingSpec(name: "catch-up-read-size", defaultText: "32KiB", help: "while more than 50 ms behind and reading a row or two per wake-up, wake for WAL data only once this much arrived (or 1 ms passed); 0 reads every message as it arrives"),
        SettingSpec(name: "spill-dir", defaultText: "$TMPDIR or /tmp", help: "where large streamed transactions spill"),
        SettingSpec(name: "status-interval", defaultText: "1s", help: "standby status update interval"),
        SettingSpec(name: "drain-timeout", defaultText: "30s", help: "the longest SIGTERM takes (run and consume): waiting for outstanding deliveries or the batch in hand, then closing (a watchdog exits 75 at this bound)"),
        SettingSpec(name: "notify-channel", defaultText: "outbox_relay", help: "LISTEN channel in notify mode"),
        SettingSpec(name: "notify-fallback-interval", defaultText: "1s", help: "notify mode reads the slot at least this often"),
        SettingSpec(name: "notify-listen-url", defaultText: "(database-url)", help: "notify mode: the connection that LISTENs; point it past a transaction pooler (which drops LISTEN) straight at PostgreSQL or at a session pool", secret: true),
        SettingSpec(name: "sweeper", defaultText: "true", help: "run the sweeper alongside the relay"),
        SettingSpec(name: "sweeper-interval", defaultText: "20s", help: "how often the sweeper runs"),
        SettingSpec(name: "sweeper-min-age", defaultText: "10s", help: "INIT rows of swept topics older than this may be re-sent"),
        SettingSpec(name: "sweeper-max-attempts", defaultText: "10", help: "re-sends before a row becomes DEAD"),
        SettingSpec(name: "sweeper-backoff", defaultText: "10s", help: "wait after the first re-send, doubling per attempt"),
        SettingSpec(name: "sweeper-backoff-max", defaultText: "1h", help: "cap on the per-row backoff"),
        SettingSpec(name: "sweeper-batch", defaultText: "500", help: "rows claimed per sweeper transaction"),
        SettingSpec(name: "sweeper-writeback-topics", defaultText: "BOOK_SAVE,PAYMENT_SAVE", help: "topics whose consumers write status back without registering (swept by age until a consumer registers); other topics are swept only while a registered consumer records its progress, and the rest are publish-only"),
        SettingSpec(name: "sweeper-consumer-expiry", defaultText: "7d", help: "a registered write-back consumer group not seen for this long stops counting"),
        SettingSpec(name: "retention", defaultText: "7d", help: "delete COMPLETE rows, and rows of publish-only topics the stream has published, older than this (0 keeps them)"),
        SettingSpec(name: "dead-retention", defaultText: "30d", help: "delete DEAD rows older than this (0 keeps them until re-driven or deleted by hand)"),
        SettingSpec(name: "group-id", defaultText: "outbox-consumers", help: "consumer group"),
        SettingSpec(name: "batch-size", defaultText: "256", help: "messages applied per database transaction (1 disables batching)"),
        SettingSpec(name: "consumer-dead-letter-topic", defaultText: "outbox.consumer.dlq", help: "where poison messages go"),
        SettingSpec(name: "http-host", defaultText: "127.0.0.1", help: "address for /metrics, /healthz and /readyz"),
        SettingSpec(name: "http-port", defaultText: "9187", help: "port for /metrics, /healthz and /readyz (0 disables)"),
        SettingSpec(name: "log-level", defaultText: "info", help: "trace, debug, info, notice, warning, error or critical"),
        SettingSpec(name: "log-format", defaultText: "text", help: "text (one line per event) or json (one object per line: time, level, component, message, metadata)"),
    ]

    static let names = Set(all.map(\.name))
    static func spec(_ name: String) -> SettingSpec? { all.first { $0.name == name } }

    /// The default as written in the table, for settings the CLI resolves itself (the
    /// library configurations' own defaults are tested against the table instead).
    static func defaultText(_ name: String) -> String {
        guard let spec = spec(name) else { preconditionFailure("\(name) is missing from SettingsCatalog") }
        return spec.defaultText
    }

    /// A dedicated flag's help: the catalog's meaning, default and environment variable.
    static func help(_ name: String) -> ArgumentHelp {
        guard let spec = spec(name) else { preconditionFailure("\(name) is missing from SettingsCatalog") }
        var text = spec.help
        if spec.defaultText.hasPrefix("(") { text += " \(spec.defaultText)" }
        else if !spec.defaultText.isEmpty { text += " (default \(spec.defaultText))" }
        text += spec.secret ? ". Secret: prefer \(Settings.environmentName(name)) (flags show up in ps)."
                            : ". Env: \(Settings.environmentName(name))."
        return ArgumentHelp(text)
    }
}
