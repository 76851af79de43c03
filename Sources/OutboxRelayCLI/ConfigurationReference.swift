import ArgumentParser

/// docs/configuration.md, made from `SettingsCatalog`: the rules every setting follows, then
/// one table row per setting. The file is generated, never edited by hand; a test
/// (`SettingsCatalogTests`) expects the committed file to equal `markdown`.
/// Regenerate: `swift run outbox-relay settings > docs/configuration.md`.
enum ConfigurationReference {
    static let header = """
        # Configuration reference

        <!-- Generated from Sources/OutboxRelayCLI/SettingsCatalog.swift by `outbox-relay settings`; do not edit. -->

        For operators of `outbox-relay run` and `outbox-relay consume`. Every setting below has a
        flag `--name`, an environment variable `OUTBOX_RELAY_NAME` (upper case, `-` as `_`) and a
        config-file key `name`.

        - **Precedence:** command-line flag, then environment variable, then the `--config` file
          (`name = value` lines, `#` comments), then the default.
        - Any setting without a dedicated flag can be given as `--set name=value`. Boolean flags
          come in pairs (`--create-slot` / `--no-create-slot`; the older `--create-slot false`
          still works).
        - Unknown names in the file or in `OUTBOX_RELAY_*` variables are errors: a typo must not
          silently fall back to a default.
        - Durations accept `250ms`, `20s`, `5m`, `2h`, `7d`; sizes accept `65536`, `64KiB`, `8MiB`.
        - Everything is validated before anything connects, and each error names the setting and
          the fix. `run --print-config` and `consume --print-config` print the resolved
          configuration, with where each value came from, without connecting. At start, their
          log line `starting relay` / `starting consumers` names the settings given and where
          each came from (with `--log-format json`, every setting).
        - Secrets (the password in `database-url`, SASL passwords, librdkafka `*.password` and
          `*secret*` properties) never appear in logs, errors or `--print-config`.

        ## TLS and SASL

        libpq options go in the database URL (`?sslmode=verify-full&sslrootcert=…`; libpq verifies
        nothing below `verify-full`). Kafka takes `kafka-security-protocol`, `kafka-sasl-*` and
        `kafka-ssl-ca-location`, and any other librdkafka property through `kafka-properties`
        (for example `ssl.certificate.location=…`).

        ## Properties `run` refuses

        `outbox-relay run` refuses `kafka-properties` that would switch off its no-loss or
        per-key-order guarantees, naming the property and the fix: `enable.idempotence` (must be
        `true`), `acks` / `request.required.acks` (`all` or `-1`),
        `max.in.flight.requests.per.connection` / `max.in.flight` (1 to 5), `message.timeout.ms` /
        `delivery.timeout.ms` (`0`: the relay never gives up on a message) and `partitioner`
        (`murmur2_random`), also with a `topic.` prefix. Values equal to these defaults are
        accepted; `enable.gapless.guarantee` is free to set, and `consume` is not restricted.

        ## Settings

        | setting (flag `--name`, env `OUTBOX_RELAY_NAME`, file `name = value`) | default | meaning |
        | --- | --- | --- |

        """

    /// The table row of one setting.
    static func row(_ spec: SettingSpec) -> String {
        let name = "`\(spec.name)`" + (spec.secret ? " (secret)" : "")
        let value = spec.defaultText.isEmpty ? "—" : "`\(spec.defaultText)`"
        return "| \(name) | \(value) | \(spec.help) |"
    }

    static func markdown(_ settings: [SettingSpec] = SettingsCatalog.all) -> String {
        header + settings.map(row).joined(separator: "\n") + "\n"
    }
}

/// `outbox-relay settings`: prints the configuration reference (docs/configuration.md).
struct SettingsReference: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settings",
        abstract: "Print the configuration reference: every setting, its default and meaning, as Markdown (docs/configuration.md).")

    func run() {
        print(ConfigurationReference.markdown(), terminator: "")
    }
}
