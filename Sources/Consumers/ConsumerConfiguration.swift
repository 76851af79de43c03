public import KafkaClient
public import PGOutput
import Schema

/// Settings of the booking/payment consumer group.
public struct ConsumerConfiguration: Sendable {
    /// libpq URL; may hold a password, so it is never logged.
    public var databaseURL: String
    public var kafka: KafkaConfiguration
    public var groupID = "outbox-consumers"
    public var topics = [EventType.bookSave, EventType.paymentSave]
    /// The outbox tables whose rows this consumer completes (`outbox-tables`, shared with the
    /// relay). A record names its table in the `outbox-table` header (none: public.outbox);
    /// a record of any other table is dead-lettered (`unknown_outbox_table`), never applied.
    public var tables: [OutboxTable] = [.default]
    /// Messages applied per database transaction. 1 disables batching. Only a backlog fills
    /// a batch (live traffic is cut after `batchWait`). 1024, measured beside 256 round-robin,
    /// applied 4-13% more effects/s while holding a backlog's row locks four times as long
    /// (docs/benchmarks.md, "Consumers"), so the smaller batch stays.
    public var batchSize = Self.defaultBatchSize
    public static let defaultBatchSize = 256
    /// How long to wait for more messages before applying a partial batch.
    public var batchWait: Duration = .milliseconds(5)
    /// Poison messages (unparseable, unknown type, no outbox row) go here with error headers.
    public var deadLetterTopic = RecordContract.Topic.consumerDeadLetters
    public var retryBackoffMaximum: Duration = .seconds(10)
    /// A missing outbox row is retried for ~1.3 s in case its transaction is not visible
    /// yet (`ConsumerStateMachine.visibilityRetryDelays`), but only when its message was produced
    /// less than this long ago: an older message's row has had time to appear, so it is
    /// poison at once. Without this, replaying old messages whose rows are gone (offsets
    /// reset, retention) paid the full wait on every batch: ~150 dead letters/s. A clock
    /// behind the producer's only makes a late row poison sooner; the sweeper re-sends it.
    public var missingRowWindow: Duration = .seconds(10)
    /// The longest a graceful stop takes (`drain-timeout`, shared with the relay): applying
    /// and committing the batch in hand, then leaving the group. Past it the watchdog ends
    /// the process (`ConsumerService`'s `onStopOverrun`); a batch whose offsets were not
    /// committed is delivered again and its effects are counted duplicates.
    public var drainTimeout: Duration = .seconds(30)
    public var applicationName = "outbox-consumers"
    /// The group member's session timeout, unless kafka-properties sets `session.timeout.ms`:
    /// how long the group coordinator waits for a silent member before it gives that
    /// member's partitions to the others. 6 s, the least Apache Kafka accepts by default
    /// (`group.min.session.timeout.ms`): a killed consumer's partitions move after 6 s, not
    /// 10. librdkafka heartbeats from its own thread every second, so a long batch cannot
    /// expire it (`max.poll.interval.ms` covers a stuck poll). Tansu also holds every
    /// JoinGroup for half of it, so there it is the start-up wait too (docs/consumers.md).
    public var sessionTimeout: Duration = .seconds(6)

    /// `kafka` as the group member uses it: with `sessionTimeout`, unless set explicitly.
    var memberKafka: KafkaConfiguration {
        var kafka = self.kafka
        if kafka.properties["session.timeout.ms"] == nil {
            kafka.properties["session.timeout.ms"] = String(sessionTimeout.components.seconds * 1_000 + sessionTimeout.components.attoseconds / 1_000_000_000_000_000)
        }
        return kafka
    }

    public init(databaseURL: String, kafka: KafkaConfiguration) {
        self.databaseURL = databaseURL
        self.kafka = kafka
    }

    public func validate() throws(ConsumerError) {
        if databaseURL.isEmpty { throw ConsumerError("database-url is empty. Fix: pass --database-url or set OUTBOX_RELAY_DATABASE_URL.") }
        if kafka.bootstrapServers.isEmpty { throw ConsumerError("kafka-bootstrap-servers is empty. Fix: pass --kafka-bootstrap-servers host:port.") }
        if groupID.isEmpty { throw ConsumerError("group-id is empty. Fix: use the default outbox-consumers.") }
        if topics.isEmpty { throw ConsumerError("no topics to consume. Fix: list at least one of BOOK_SAVE, PAYMENT_SAVE.") }
        if tables.isEmpty { throw ConsumerError("no outbox tables to update. Fix: set outbox-tables, e.g. public.outbox (the default).") }
        if !(1...10_000).contains(batchSize) { throw ConsumerError("batch-size \(batchSize) is out of range. Fix: use 1 to 10000 (default \(Self.defaultBatchSize)).") }
        if deadLetterTopic.isEmpty { throw ConsumerError("dead-letter topic is empty. Fix: use the default outbox.consumer.dlq.") }
        if drainTimeout <= .zero { throw ConsumerError("drain-timeout must be positive. Fix: use the default 30s.") }
        if sessionTimeout < .seconds(1) { throw ConsumerError("the session timeout must be at least 1s. Fix: use the default 6s.") }
    }
}

public struct ConsumerError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
