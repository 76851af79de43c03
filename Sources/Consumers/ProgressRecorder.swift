import Foundation
import KafkaClient
import Logging
import PostgresClient
import Synchronization
import Threading

/// Registers a write-back consumer group's topics for the relay's sweeper and records how
/// far it has read (`ReadProgress`), on its own thread and connection so the consumer's
/// hot path pays one mutex per batch. Written at most once per `interval`, one upsert for
/// all partitions; `GREATEST` keeps the furthest any member recorded, so a member that
/// takes a partition over never moves it back. A failed write is logged and retried: the
/// sweeper then only waits longer, it never re-sends early.
final class ProgressRecorder: Sendable {
    private let databaseURL: String
    private let applicationName: String
    private let groupID: String
    private let topics: [String]
    private let interval: Duration
    private let logger: Logger
    private let progress = Mutex(ReadProgress())
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)

    init(configuration: ConsumerConfiguration, logger: Logger, interval: Duration = .seconds(1)) {
        databaseURL = configuration.databaseURL
        applicationName = configuration.applicationName + "-progress"
        groupID = configuration.groupID
        topics = configuration.topics
        self.interval = interval
        self.logger = logger
    }

    static func wallNow() -> Double { Date().timeIntervalSince1970 }

    func assigned(_ partitions: [TopicPartition]) { progress.withLock { $0.assigned(partitions, at: Self.wallNow()) } }
    func revoked(_ partitions: [TopicPartition]) { progress.withLock { $0.revoked(partitions) } }
    func applied(_ messages: [KafkaMessage]) {
        let read = messages.map { (TopicPartition(topic: $0.topic, partition: $0.partition), $0.timestampMilliseconds) }
        progress.withLock { $0.applied(read) }
    }
    func idle(pollStart: Double) { progress.withLock { $0.idle(pollStart: pollStart) } }
    /// Partitions this member holds now (assigned and not revoked).
    var assignedPartitions: Int { progress.withLock { $0.partitions.count } }

    /// Starts the writer thread: registers, then records every `interval` until `stop()`.
    func start() {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        BlockingThread { [self] in
            var connection: PGConnection?
            var registered = false
            var lastWarning: ContinuousClock.Instant?
            while true {
                let stopping = stopped.load(ordering: .acquiring)
                do {
                    if connection?.isHealthy != true {
                        connection = try PGConnection.connectBlocking(databaseURL, applicationName: applicationName)
                    }
                    if !registered { try register(on: connection!); registered = true }
                    try write(on: connection!)
                } catch {
                    connection = nil
                    // Once a minute at most: a database without migration 0007 fails every second.
                    if lastWarning.map({ ContinuousClock.now - $0 > .seconds(60) }) ?? true {
                        lastWarning = .now
                        logger.warning("recording the consumer's read progress for the relay's sweeper failed; retrying (the sweeper waits for this group meanwhile). Fix: run `outbox-relay migrate` and apply sql/roles.sql if the tables are missing or not granted",
                                       metadata: ["error": "\(error)"])
                    }
                }
                if stopping { break }
                Thread.sleep(forTimeInterval: interval.inSecondsDouble)
            }
            finished.signal()
        }.start()
    }

    /// Writes the last progress and stops the thread (within one connect's time).
    func stop() {
        guard started.load(ordering: .acquiring), !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        finished.wait()
    }

    private func register(on connection: PGConnection) throws {
        try connection.queryBlocking("""
            INSERT INTO outbox_writeback_consumer (topic, group_id) SELECT unnest($1::text[]), $2
            ON CONFLICT (topic, group_id) DO UPDATE SET seen_at = now()
            """, [.text(SQLArray.texts(topics.map { Array($0.utf8) })), .text(groupID)])
        logger.info("registered as a write-back consumer for the relay's sweeper", metadata: ["group": "\(groupID)", "topics": "\(topics.joined(separator: ","))"])
    }

    private func write(on connection: PGConnection) throws {
        guard let changes = progress.withLock({ $0.takeChanges() }) else {
            try connection.queryBlocking("UPDATE outbox_writeback_consumer SET seen_at = now() WHERE group_id = $1 AND seen_at < now() - interval '1 minute'",
                                         [.text(groupID)])
            return
        }
        let entries = changes.sorted { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }
        do {
            try connection.queryBlocking("""
                WITH seen AS (UPDATE outbox_writeback_consumer SET seen_at = now() WHERE group_id = $1)
                INSERT INTO outbox_consumer_progress AS p (group_id, topic, partition, read_before)
                SELECT $1, t, n, CASE WHEN s = '-Infinity' THEN '-infinity'::timestamptz ELSE to_timestamp(s::float8) END
                FROM unnest($2::text[], $3::int[], $4::text[]) AS u(t, n, s)
                ON CONFLICT (group_id, topic, partition)
                DO UPDATE SET read_before = GREATEST(p.read_before, EXCLUDED.read_before), updated_at = now()
                """, [.text(groupID), .text(SQLArray.texts(entries.map { Array($0.key.topic.utf8) })),
                      .text(SQLArray.bigints(entries.map { Int64($0.key.partition) })),
                      .text("{" + entries.map { $0.value == -.infinity ? "-Infinity" : String($0.value) }.joined(separator: ",") + "}")])
        } catch {
            progress.withLock { $0.markChanged() }  // written again next time
            throw error
        }
    }
}

extension Duration {
    fileprivate var inSecondsDouble: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
