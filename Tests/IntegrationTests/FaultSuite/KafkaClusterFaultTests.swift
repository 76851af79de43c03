import EphemeralServers
import Foundation
import KafkaClient
import PGOutput
import PostgresClient
import Testing

/// Issue 32 item 5: the relay's stream against a three-broker cluster (librdkafka's mock
/// cluster; see docs/kafka-cluster.md for what it proves and what it cannot) with a real
/// PostgreSQL under writes. Leaders move, brokers restart one by one, produce requests
/// fail with NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS and REQUEST_TIMED_OUT, and one
/// broker answers too slowly; the output is held to the single-broker fault suite's
/// standard (`DeliveryCheck`).
@Suite("Fault injection: a three-broker Kafka cluster", .serialized)
struct KafkaClusterFaultTests {
    static let topic = "BOOK_SAVE"
    static let partitions: Int32 = 6
    static let drainTimeout: Duration = .seconds(10)

    @Test("leader moves, a rolling restart, NOT_LEADER_OR_FOLLOWER / NOT_ENOUGH_REPLICAS / timeouts under writes: 0 missing, 0 out of order, the confirmed LSN never past an unacknowledged row, SIGTERM within drain-timeout")
    func clusterFaults() async throws {
        try await withTestContext(broker: false) { ctx in
            let db = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: db)
            let cluster = try KafkaMockCluster(brokers: 3)
            try cluster.createTopic(Self.topic, partitions: Self.partitions, replicationFactor: 3)
            try cluster.createTopic("outbox.dlq", partitions: 1, replicationFactor: 3)
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])

            // A client-side request timeout shorter than the slow broker's delay below, so
            // that phase produces real timeouts (requests the broker may have stored).
            let extra = ["--set", "drain-timeout=\(Self.drainTimeout.components.seconds)s",
                         "--kafka-properties", "request.timeout.ms=3000,topic.metadata.refresh.interval.ms=1000"]
            let port = freeLoopbackPort()
            var relay = try startRelayProcess(ctx, bootstrapServers: cluster.bootstrapServers, extra: extra, logName: "cluster", httpPort: port)
            let load = LoadGenerator(url: ctx.databaseURL, pauseMicros: 3_000)
            #expect(await eventually(timeout: .seconds(30)) { await published(port) > 0 }, "the relay publishes to the cluster: \(relay.output.suffix(1_500))")

            // 1. Leader moves: every partition's leader goes to another broker, ten times.
            for _ in 0..<10 {
                for partition in 0..<Self.partitions {
                    try cluster.setPartitionLeader(Self.topic, partition: partition, broker: cluster.brokerIDs.randomElement()!)
                }
                try await Task.sleep(for: .milliseconds(400))
            }

            // 2. A rolling restart: each broker down for 2 s, then up, one after another.
            for broker in cluster.brokerIDs {
                try cluster.setBrokerDown(broker)
                try await Task.sleep(for: .seconds(2))
                try cluster.setBrokerUp(broker)
                try await Task.sleep(for: .seconds(1))
            }

            // 3. Broker errors on produce requests, as a leader election or a shrunken ISR
            //    answers them: NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
            //    REQUEST_TIMED_OUT.
            let codes = KafkaMockCluster.ErrorCode.self
            for _ in 0..<5 {
                cluster.pushRequestErrors(.produce, [codes.notLeaderOrFollower, codes.notEnoughReplicas, codes.requestTimedOut,
                                                     codes.notEnoughReplicasAfterAppend, codes.notLeaderOrFollower])
                try await Task.sleep(for: .seconds(1))
            }

            // 4. Client-side timeouts: one broker, leader of every partition, answers after
            //    4 s, past request.timeout.ms (3 s), for 8 s.
            for partition in 0..<Self.partitions { try cluster.setPartitionLeader(Self.topic, partition: partition, broker: 2) }
            try cluster.setBrokerRTT(2, milliseconds: 4_000)
            try await Task.sleep(for: .seconds(8))
            try cluster.setBrokerRTT(2, milliseconds: 0)

            // 5. Exact acknowledgement: the leader of every partition is down, so nothing
            //    committed from now on can be acknowledged; the slot must not be confirmed
            //    past any such transaction while it lasts.
            for partition in 0..<Self.partitions { try cluster.setPartitionLeader(Self.topic, partition: partition, broker: 1) }
            try await Task.sleep(for: .seconds(1))
            try cluster.setBrokerDown(1)
            let down = try await db.query("SELECT pg_current_wal_lsn()::text AS lsn").single().lsn("lsn")
            try await Task.sleep(for: .seconds(4))
            let confirmedWhileDown = try #require(try await slotConfirmedLSN(db, slot: ctx.slotName))
            let overtaken = try await outboxCommits(db, oracle: oracle, after: down, upTo: confirmedWhileDown)
            let written = try await outboxCommits(db, oracle: oracle, after: down, upTo: LSN(UInt64.max))
            #expect(written > 0, "rows were written while the leader was down")
            #expect(overtaken == 0, "the slot was confirmed at \(confirmedWhileDown), past \(overtaken) transactions committed after \(down) that no broker could acknowledge")

            // 6. SIGTERM while that broker is still down: the relay exits within drain-timeout.
            let stopped = ContinuousClock.now
            let status = await relay.terminate(timeout: Self.drainTimeout + .seconds(30))
            let stopTime = ContinuousClock.now - stopped
            #expect(status != nil && stopTime <= Self.drainTimeout + .seconds(3),
                    "SIGTERM took \(stopTime) (drain-timeout \(Self.drainTimeout)), exit \(status.map(String.init) ?? "none"): \(relay.output.suffix(1_500))")
            try cluster.setBrokerUp(1)

            // The writes stop; a fresh relay publishes the rest.
            await load.stop()
            relay = try startRelayProcess(ctx, bootstrapServers: cluster.bootstrapServers, extra: extra, logName: "cluster-final", httpPort: port)
            let last = try await oracle.lastChangeLSN(on: db)
            #expect(await eventually(timeout: .seconds(90)) { ((try? await slotConfirmedLSN(db, slot: ctx.slotName)) ?? nil).map { $0 >= last } == true },
                    "the final relay confirms every row: \(relay.output.suffix(1_500))")
            let finalStatus = await relay.terminate()
            #expect(finalStatus == 0, "exit after SIGTERM: \(relay.output.suffix(1_500))")

            let report = try await checkScenario("3-broker cluster: leader moves, rolling restart, NOT_LEADER/NOT_ENOUGH_REPLICAS/timeouts, slow broker",
                                                 db: db, oracle: oracle, bootstrapServers: cluster.bootstrapServers,
                                                 consumers: false, recovery: stopTime, worstSlotLag: 0)
            // Duplicates come only from what was in flight at the SIGTERM during the outage
            // (stored by a broker, never acknowledged): a bounded share, not a replay.
            #expect(report.check.duplicates * 20 <= report.check.committed, "duplicates \(report.check.duplicates) > 5% of \(report.check.committed) rows")
            print("FAULT 3-broker cluster: confirmed \(confirmedWhileDown) while down since \(down), \(written) transactions unacknowledged, none overtaken; SIGTERM in \(stopTime), exit \(status.map(String.init) ?? "none")")
            try await oracle.drop(on: db)
        }
    }

    /// Transactions with an outbox insert whose commit ends in (`after`, `upTo`], from the
    /// oracle's test_decoding slot (independent of the relay's decoder).
    func outboxCommits(_ db: PGConnection, oracle: CommitOrderOracle, after: LSN, upTo: LSN) async throws -> Int {
        try await db.query("""
            WITH c AS (SELECT lsn, xid, data FROM pg_logical_slot_peek_changes($1, NULL, NULL, 'skip-empty-xacts', '1'))
            SELECT count(*)::int8 AS n FROM c
            WHERE data LIKE 'COMMIT%' AND lsn > $2::pg_lsn AND lsn <= $3::pg_lsn
              AND xid IN (SELECT xid FROM c WHERE data LIKE 'table public.outbox: INSERT:%')
            """, [.text(oracle.slot), .text(after.description), .text(upTo.description)]).single().int("n")
    }
}

/// The relay process's `outbox_relay_events_published_total`, 0 when it does not answer.
private func published(_ port: Int) async -> Double {
    (await LoopbackHTTP.get(port: port, path: "/metrics")).flatMap { LoopbackHTTP.sample("outbox_relay_events_published_total", in: $0.body) } ?? 0
}
