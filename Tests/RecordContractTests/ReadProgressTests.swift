@testable import Consumers
import KafkaClient
import Testing

/// What a write-back consumer records for the relay's sweeper (issue 31): how far it has
/// read, per partition, never further than it has applied.
@Suite("Read progress")
struct ReadProgressTests {
    let p0 = TopicPartition(topic: "BOOK_SAVE", partition: 0)
    let p1 = TopicPartition(topic: "BOOK_SAVE", partition: 1)

    @Test("a fresh assignment reads as not read (-infinity) until a message of it is applied")
    func assignment() {
        var progress = ReadProgress()
        progress.assigned([p0, p1], at: 100)
        #expect(progress.takeChanges() == [p0: -.infinity, p1: -.infinity])
        #expect(progress.takeChanges() == nil, "nothing changed since")
        progress.applied([(p0, 95_500), (p0, 96_000), (p1, nil)])
        #expect(progress.takeChanges() == [p0: 96, p1: -.infinity], "a message without a timestamp proves nothing")
    }

    @Test("progress never moves back: an older message (a re-send's neighbour) changes nothing")
    func monotonic() {
        var progress = ReadProgress()
        progress.assigned([p0], at: 0)
        _ = progress.takeChanges()
        progress.applied([(p0, 50_000)])
        progress.applied([(p0, 40_000)])
        #expect(progress.takeChanges() == [p0: 50])
    }

    /// Feed: when the partition was assigned and when the idle poll started → its read-before.
    @Test("an idle poll counts only for partitions held for the settle time, and lags by the margin", arguments: [
        (100.0, 105.0, -Double.infinity),  // assigned 5 s ago: its backlog's first fetch may not have arrived
        (100.0, 110.0, 108.0),             // held 10 s: read up to the poll's start less 2 s
        (100.0, 200.0, 198.0),
    ])
    func idle(assignedAt: Double, pollStart: Double, readBefore: Double) {
        var progress = ReadProgress()
        progress.assigned([p0], at: assignedAt)
        _ = progress.takeChanges()
        progress.idle(pollStart: pollStart)
        #expect(progress.partitions[p0]?.readBefore == readBefore)
    }

    @Test("an idle poll never moves a partition back behind an applied message; a revoked partition is no longer reported")
    func idleAndRevoke() {
        var progress = ReadProgress()
        progress.assigned([p0, p1], at: 0)
        progress.applied([(p0, 500_000)])
        progress.idle(pollStart: 300)
        #expect(progress.takeChanges() == [p0: 500, p1: 298])
        progress.revoked([p1])
        progress.idle(pollStart: 600)
        #expect(progress.takeChanges() == [p0: 598])
    }

    @Test("a failed write is written again")
    func retry() {
        var progress = ReadProgress()
        progress.assigned([p0], at: 0)
        _ = progress.takeChanges()
        progress.markChanged()
        #expect(progress.takeChanges() == [p0: -.infinity])
    }
}
