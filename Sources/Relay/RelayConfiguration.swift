public import PGOutput
public import KafkaClient
public import RelayCore
public import Schema

/// How the relay captures committed outbox rows.
public enum CaptureMode: String, Sendable, CaseIterable {
    /// A replication connection (START_REPLICATION, pgoutput): the default, zero write-path cost.
    case stream
    /// LISTEN/NOTIFY plus SQL reads of the slot, for connections that cannot replicate.
    case notify
}

/// Everything the relay needs, validated by `validate()` before anything connects.
public struct RelayConfiguration: Sendable {
    /// libpq URL or key=value string. May hold a password: never log it, log `target` instead.
    public var databaseURL: String
    public var kafka: KafkaConfiguration
    public var capture: CaptureMode = .stream
    public var slotName = "outbox_relay"
    public var publication = "outbox_pub"
    /// The outbox-shaped tables captured through the one slot and publication
    /// (`outbox-tables`). Each is swept and retained on its own.
    public var tables: [OutboxTable] = [.default]
    /// Create the slot and publication when missing (`--create-slot`).
    public var createSlot = true
    public var router: TopicRouter
    /// Bound on events published but not yet acknowledged; reading WAL stops at the bound.
    /// 4,000 covers 20 ms of broker acknowledgement at 200k rows/s, more than a drain here
    /// needs (2,000 and 10,000 drain alike), and holds ~7 MiB less than 10,000 did: each
    /// event in flight is held twice, here and in librdkafka's queue, until its ack.
    public var maxInFlightEvents = 4_000
    public var maxInFlightBytes = 8 << 20
    /// Memory for transactions streamed before commit; beyond it they spill to disk.
    /// PostgreSQL streams a transaction only once its decoding memory passes
    /// `logical_decoding_work_mem` (64 MB by default), so a streamed transaction is almost
    /// always far larger than this budget and spills anyway: a bigger budget only delays the
    /// spill and adds to the peak (4 MiB cost ~2 MiB more peak RSS on a 1M-row transaction,
    /// at the same drain rate).
    public var streamingMemoryBytes = 1 << 20
    public var spillDirectory = "/tmp"
    /// Stream mode, while the relay is behind and its reads come in crumbs: the capture
    /// thread wakes only once `batchBytes` of WAL data arrived (or 1 ms passed) instead of
    /// once per row (`catch-up-read-size`; 0 reads every message as it arrives). See
    /// `CatchUpReads`; its thresholds other than the size are not settings.
    public var catchUpReads = CatchUpReads()
    /// How often a standby status update goes to PostgreSQL when nothing else prompts one.
    public var statusInterval: Duration = .seconds(1)
    /// Reconnect backoff after PostgreSQL or the session fails.
    public var reconnectBackoff = Backoff(initial: .milliseconds(200), maximum: .seconds(15))
    /// How often a standby checks whether the slot became free.
    public var standbyPollInterval: Duration = .seconds(2)
    /// How long SIGTERM may take, from the signal to the end of `run()`: the wait for
    /// outstanding deliveries, then the teardown (`stopTeardownReserve`).
    public var drainTimeout: Duration = .seconds(30)
    /// The end of `drainTimeout` kept for what follows the wait for deliveries: the final
    /// confirmation, closing the producer and the connections. A fifth of it, at most half
    /// a second: that teardown took ~70 ms on a quiet host and over a second under a loaded
    /// CI run, which is why `RelayService` also has a watchdog at `drainTimeout` itself.
    public var stopTeardownReserve: Duration { min(drainTimeout / 5, .milliseconds(500)) }
    /// notify mode: the channel, and how often to read the slot without a notification.
    public var notifyChannel = "outbox_relay"
    public var notifyFallbackInterval: Duration = .seconds(1)
    /// notify mode: where the LISTEN connection goes, when not to `databaseURL` (nil). A
    /// relay whose `databaseURL` is a transaction pooler LISTENs directly here, since the
    /// pooler does not keep LISTEN (`ListenProbe`); everything else may stay pooled.
    public var notifyListenURL: String?
    /// notify mode: maximum changes read per slot peek.
    public var notifyBatchChanges = 20_000
    public var applicationName = "outbox-relay"
    /// The header vocabulary of published records (`RecordHeaders`). Default: outbox.
    public var headerStyle = HeaderStyle.default
    /// Sharded capture (`--shard I/N`): this relay reads only shard I's rows, through the
    /// shard's own slot and publication (`slotName`/`publication` are then the shard's).
    /// nil: one slot carries every row.
    public var shard: ShardSpec?

    public init(databaseURL: String, kafka: KafkaConfiguration, router: TopicRouter? = nil) {
        self.databaseURL = databaseURL
        self.kafka = kafka
        self.router = router ?? (try! TopicRouter())
    }

    /// Checks the settings that can be checked without connecting. Each error names the
    /// setting and the fix; a fix that names a default spells it as the settings catalog
    /// does (a test holds the two together).
    public func validate() throws(RelayError) {
        func fail(_ setting: String, _ problem: String, _ fix: String) throws(RelayError) {
            throw RelayError(.invalidConfiguration, "\(setting) \(problem).", fix: fix)
        }
        if databaseURL.isEmpty { try fail("database-url", "is empty", "pass --database-url or set OUTBOX_RELAY_DATABASE_URL") }
        if kafka.bootstrapServers.isEmpty { try fail("kafka-bootstrap-servers", "is empty", "pass --kafka-bootstrap-servers host:port") }
        if !Self.isValidSlotName(slotName) {
            try fail("slot", "\(TopicRouter.printable(slotName)) is not a valid replication slot name", "use 1-63 characters of a-z, 0-9 and _")
        }
        if publication.isEmpty || publication.utf8.count > 63 { try fail("publication", "must be 1-63 characters", "use the default outbox_pub") }
        if maxInFlightEvents < 1 { try fail("max-in-flight", "must be at least 1", "use the default 4000") }
        if maxInFlightBytes < 64 << 10 { try fail("max-in-flight-bytes", "must be at least 64 KiB", "use the default 8MiB") }
        if streamingMemoryBytes < 64 << 10 { try fail("streaming-memory", "must be at least 64 KiB", "use the default 1MiB") }
        if catchUpReads.batchBytes != 0 && !(1 << 10...1 << 20).contains(catchUpReads.batchBytes) {
            try fail("catch-up-read-size", "must be 0 (off) or between 1 KiB and 1 MiB", "use the default 32KiB")
        }
        if statusInterval < .milliseconds(10) || statusInterval > .seconds(30) {
            try fail("status-interval", "must be between 10 ms and 30 s", "use the default 1s; PostgreSQL's wal_sender_timeout is 60 s")
        }
        // A zero bound would make every stop a watchdog exit (75) before anything is confirmed.
        if drainTimeout <= .zero { try fail("drain-timeout", "must be positive", "use the default 30s") }
        if notifyChannel.isEmpty || notifyChannel.utf8.count > 63 { try fail("notify-channel", "must be 1-63 characters", "use the default outbox_relay") }
        if shard != nil, capture == .notify {
            try fail("capture", "notify cannot be combined with --shard", "use stream capture for sharded relays (notify mode reads one slot through SQL and is meant for a single relay behind a pooler), or run unsharded")
        }
        if let refused = ProducerGuarantees.check(kafka.properties) { throw RelayError(.invalidConfiguration, refused.message, fix: refused.fix) }
    }

    /// PostgreSQL's rule for slot names: lower-case letters, digits and underscores, ≤ 63.
    static func isValidSlotName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 63 && name.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "_")
        }
    }
}
