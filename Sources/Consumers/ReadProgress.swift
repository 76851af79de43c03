import KafkaClient

/// How far a write-back consumer has read, per assigned partition: "every message produced
/// before `readBefore` (seconds since 1970, on the producer's clock) has been applied and
/// committed". Pure. The relay's sweeper re-sends a row only once its topic's consumers
/// have read past the time the stream published it (`SweepScope`), so a consumer that is
/// down or behind costs no re-send (issue 31).
///
/// Two pieces of evidence move it forward:
/// - an applied message: its partition is read up to the message's timestamp (records of
///   one partition are appended in the order the relay produced them);
/// - an idle poll: nothing left to read and nothing in hand, so every partition held for
///   at least `settleTime` has been read up to the poll's start less `idleMargin` (the
///   fetch latency and some clock skew). Without it, a partition with no new messages
///   would hold the topic back forever. The settle time keeps a fresh assignment, whose
///   first fetch of a backlog has not arrived yet, from looking idle.
/// Broker watermarks are not used: Tansu 0.6, the broker the tests run, reports them wrongly.
struct ReadProgress: Sendable, Equatable {
    struct Partition: Sendable, Equatable {
        var assignedAt: Double
        /// -infinity until this member has read something of the partition.
        var readBefore: Double
    }

    var idleMargin = 2.0
    var settleTime = 10.0
    private(set) var partitions: [TopicPartition: Partition] = [:]
    /// Whether something changed since the last `takeChanges()`.
    private(set) var changed = false

    mutating func assigned(_ assigned: [TopicPartition], at now: Double) {
        for tp in assigned where partitions[tp] == nil { partitions[tp] = Partition(assignedAt: now, readBefore: -.infinity) }
        changed = changed || !assigned.isEmpty
    }

    mutating func revoked(_ revoked: [TopicPartition]) {
        for tp in revoked { partitions[tp] = nil }
    }

    /// A batch was applied and committed: `messages` are (partition, producer timestamp in ms).
    mutating func applied(_ messages: [(TopicPartition, Int64?)]) {
        for (tp, milliseconds) in messages {
            guard let milliseconds, var partition = partitions[tp] else { continue }
            let time = Double(milliseconds) / 1_000
            if time > partition.readBefore {
                partition.readBefore = time
                partitions[tp] = partition
                changed = true
            }
        }
    }

    /// A poll that started at `pollStart` returned nothing, with no batch in hand or in
    /// flight: everything fetched before it is applied.
    mutating func idle(pollStart: Double) {
        let readBefore = pollStart - idleMargin
        for (tp, partition) in partitions where pollStart - partition.assignedAt >= settleTime && readBefore > partition.readBefore {
            partitions[tp]?.readBefore = readBefore
            changed = true
        }
    }

    /// A write failed: write everything again next time.
    mutating func markChanged() { changed = true }

    /// What to write, and clears `changed`.
    mutating func takeChanges() -> [TopicPartition: Double]? {
        guard changed else { return nil }
        changed = false
        return partitions.mapValues(\.readBefore)
    }
}
