import ArgumentParser
import CLISettings
import Consumers
import Dispatch
import EphemeralServers
import Foundation
import HTTPEndpoint
import KafkaClient
import Logging
import Metrics
import PostgresClient
import Relay
import RelayCore
import Schema
import ServiceLifecycle
import Synchronization
import Threading
import UnixSignals

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The main job on an embedded default: throwaway PostgreSQL and Kafka-protocol broker, relay, sweeper and consumers, with booking/payment traffic and an end-to-end verification.",
        discussion: "Leaves nothing running: both servers and their data are removed at the end (or on Ctrl-C).")

    // Each user's wait token ends with its payment, so the default 15 s at ~200 bookings/s
    // needs about 3,000 users and seats: with 200, the traffic stopped after ~4 s once
    // consumers applied at once (the tokens expired as fast as they were paid).
    @Option(help: "Users booking and paying.") var users = 4_000
    @Option(help: "Seats for sale.") var seats = 4_000
    @Option(help: "Target bookings per second (each may be followed by a payment).") var rate = 200
    @Option(help: "How long traffic flows.") var duration = "15s"
    @Option(name: .customLong("pay-ratio"), help: "Share of bookings that are paid (0 to 1).") var payRatio = 0.8
    @Option(help: "Concurrent writer connections.") var writers = 4
    @Option(name: .customLong("http-port"), help: "Serve /metrics, /healthz, /readyz on this port during the demo (0 disables).") var httpPort = Int(SettingsCatalog.defaultText("http-port"))!
    @Flag(help: "Keep the servers up after the summary until Ctrl-C, to inspect topics with kcat.") var hold = false
    @Option(name: .customLong("log-level"), help: "Log level for the components (default warning, so the progress line stays readable).")
    var logLevel = "warning"

    func validate() throws {
        guard users > 0 else { throw ValidationError("--users must be at least 1.") }
        guard seats > 0 else { throw ValidationError("--seats must be at least 1.") }
        guard rate > 0 else { throw ValidationError("--rate must be at least 1 per second.") }
        guard (0...1).contains(payRatio) else { throw ValidationError("--pay-ratio must be between 0 and 1.") }
        guard (1...64).contains(writers) else { throw ValidationError("--writers must be between 1 and 64.") }
        guard Settings.parseDuration(duration) != nil else { throw ValidationError("--duration \(duration) is not a duration (e.g. 15s, 2m).") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level (trace … critical).") }
    }

    func run() async throws {
        Observability.bootstrap(logLevel: Logger.Level(rawValue: logLevel)!)
        let interrupted = await InterruptWatcher()
        let watching = Task { await interrupted.watch() }
        defer { watching.cancel() }
        let logger = Logger(label: "demo")
        say("starting a throwaway PostgreSQL 15 and a Tansu broker …")
        let cluster = try await PostgresCluster.start()
        let broker: TansuBroker
        do { broker = try await TansuBroker.start() } catch { await cluster.stop(); throw error }
        var outcome: Result<Bool, any Error> = .success(false)
        do {
            outcome = .success(try await runDemo(cluster: cluster, broker: broker, logger: logger, interrupted: interrupted))
        } catch {
            outcome = .failure(error)
        }
        say("stopping the broker and PostgreSQL; removing their data …")
        await broker.stop()
        await cluster.stop()
        switch outcome {
        case .success(let verified): if !verified { throw ExitCode(1) }
        case .failure(let error): throw error
        }
    }

    private func runDemo(cluster: PostgresCluster, broker: TansuBroker, logger: Logger, interrupted: InterruptWatcher) async throws -> Bool {
        let database = try await cluster.createDatabase(prefix: "demo")
        let db = try await PGConnection.connect(database.url)
        let report = try await MigrationRunner().run(on: db)
        say("PostgreSQL on 127.0.0.1:\(cluster.port) (database \(database.name)); migrations applied: \(report.applied.count)")
        let seed = try await DomainSeed.create(on: db, seats: seats, users: users)
        say("seeded \(seats) seats and \(users) users with active wait tokens")

        var relayConfiguration = RelayConfiguration(databaseURL: database.url, kafka: KafkaConfiguration(bootstrapServers: broker.bootstrapServers))
        relayConfiguration.spillDirectory = NSTemporaryDirectory()
        let sweeper = SweeperPolicy(interval: .seconds(2), minimumAge: .seconds(10), maxAttempts: 10, backoffBase: .seconds(10))
        let relay = try RelayService(configuration: relayConfiguration, sweeper: sweeper, logger: Logger(label: "relay"))
        var consumerConfiguration = ConsumerConfiguration(databaseURL: database.url, kafka: KafkaConfiguration(bootstrapServers: broker.bootstrapServers, clientID: "demo-consumers"))
        consumerConfiguration.batchSize = 64
        // Topics appear when the relay first produces; let the consumers create and find them at once.
        consumerConfiguration.kafka.properties["allow.auto.create.topics"] = "true"
        let consumer = try ConsumerService(configuration: consumerConfiguration, logger: Logger(label: "consumers"))
        let topicMaker = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: broker.bootstrapServers, clientID: "demo-setup"),
                                           logger: Logger(label: "demo-setup"), onDelivery: { _ in })
        await topicMaker.requestTopicMetadata([EventType.bookSave, EventType.paymentSave, RecordContract.Topic.relayDeadLetters, RecordContract.Topic.consumerDeadLetters])
        await topicMaker.close()
        let relayTask = Task { try await relay.run() }
        let consumerTask = Task { try await consumer.run() }
        var endpoints: EndpointServer?
        if httpPort != 0 {
            let server = try HTTPEndpoints(host: "127.0.0.1", port: httpPort, health: relay.health, notReadyBecause: { nil },
                                           readyGauge: Gauge(label: "outbox_relay_ready", dimensions: [("slot", relayConfiguration.slotName)])).makeServer()
            do {
                try server.start()
                endpoints = server
                say("metrics: curl -s http://127.0.0.1:\(httpPort)/metrics | grep outbox_   (also /healthz, /readyz)")
            } catch {
                // The demo's traffic does not need the endpoints (a relay on this host may hold the port).
                say("metrics: not served (\(error)); the demo goes on without them. Fix: --http-port with a free port.")
            }
        }
        defer { endpoints?.stop() }
        say("Kafka-protocol broker on \(broker.bootstrapServers); inspect while it runs:")
        say("  kcat -b \(broker.bootstrapServers) -C -t BOOK_SAVE -o beginning -e -f 'key=%k headers=%h %s\\n'")

        let deadline = ContinuousClock.now + .seconds(30)
        while relay.health.current.state != .streaming {
            guard ContinuousClock.now < deadline else { throw CLIError("the relay did not start streaming: \(relay.health.current.detail)") }
            try await Task.sleep(for: .milliseconds(50))
        }

        // Traffic: writers book random free seats and pay for most bookings.
        let traffic = TrafficStats()
        let length = Settings.parseDuration(duration)!
        say("driving traffic for \(duration) at ~\(rate) bookings/s with \(writers) writers …")
        let trafficEnd = ContinuousClock.now + length
        let progress = Task {
            while !Task.isCancelled {
                printProgress(traffic: traffic, relay: relay, consumer: consumer)
                try? await Task.sleep(for: .seconds(1))
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            let seatQueue = SeatQueue(seed.seatIds.shuffled())
            let perWriterInterval = Duration.seconds(Double(writers) / Double(rate))
            for writer in 0..<writers {
                group.addTask {
                    let conn = try await PGConnection.connect(database.url)
                    var next = ContinuousClock.now
                    var userIndex = writer
                    while ContinuousClock.now < trafficEnd, !interrupted.fired, let seat = seatQueue.next() {
                        let user = seed.users[userIndex % seed.users.count]
                        userIndex += writers
                        do {
                            let reservation = try await BookingFacade().reserveSeat(on: conn, seatId: seat, userId: user.userId, token: user.token)
                            traffic.booked()
                            if Double.random(in: 0..<1) < payRatio {
                                do {
                                    _ = try await BookingFacade().pay(on: conn, bookingId: reservation.bookingId, userId: user.userId, token: user.token)
                                    traffic.paid()
                                } catch let error as BookingError { traffic.refused(error) }
                            }
                        } catch let error as BookingError {
                            traffic.refused(error)
                        }
                        next += perWriterInterval
                        let now = ContinuousClock.now
                        if next > now { try await Task.sleep(until: next, clock: .continuous) } else { next = now }
                    }
                }
            }
            try await group.waitForAll()
        }
        if interrupted.fired { say("\ninterrupted: stopping early and verifying what was written") }

        // Replays like those a relay crash or a sweeper resend causes, to show the dedupe.
        let replayed = try await replaySome(db: db, bootstrapServers: broker.bootstrapServers)
        traffic.replayed = replayed

        // Wait for the line to settle: every outbox row COMPLETE.
        let written = try await count(db, "SELECT count(*) AS n FROM outbox")
        let settleDeadline = ContinuousClock.now + .seconds(60)
        while try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'") < written
                || consumer.totals.duplicates < replayed,
              ContinuousClock.now < settleDeadline, !interrupted.fired {
            try await Task.sleep(for: .milliseconds(200))
        }
        progress.cancel()
        printProgress(traffic: traffic, relay: relay, consumer: consumer)
        say("")

        let verified = try await verify(db: db, bootstrapServers: broker.bootstrapServers, relay: relay, consumer: consumer, traffic: traffic)
        say("inspect the topics (while the servers run, see --hold):")
        say("  kcat -b \(broker.bootstrapServers) -C -t BOOK_SAVE -o beginning -e -f 'key=%k headers=%h %s\\n'")
        say("  kcat -b \(broker.bootstrapServers) -C -t PAYMENT_SAVE -o beginning -e -c 5")
        if hold {
            say("holding: servers stay up until Ctrl-C")
            while !interrupted.fired { try await Task.sleep(for: .milliseconds(200)) }
        }
        relay.stop()
        consumer.stop()
        try await relayTask.value
        try await consumerTask.value
        return verified
    }

    private func replaySome(db: PGConnection, bootstrapServers: String) async throws -> Int {
        let rows = try await db.query("""
            SELECT outbox_id, topic, mq_key, type, payload::text AS payload, created_at::text AS created, trace_parent
            FROM outbox TABLESAMPLE BERNOULLI (5) LIMIT 500
            """).rows
        guard !rows.isEmpty else { return 0 }
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, clientID: "demo-replayer"),
                                         logger: Logger(label: "replayer"), onDelivery: { _ in })
        for row in rows {
            _ = try await producer.send(topic: try row.string("topic"), key: Array(try row.string("mq_key").utf8),
                                        value: Array(try row.string("payload").utf8), headers: RecordHeaders.list(
                                            .default, id: try row.int64("outbox_id"), type: try row.string("type"),
                                            createdAt: try row.string("created"), topic: try row.string("topic"),
                                            traceParent: try row.optionalString("trace_parent")))
        }
        await producer.close()
        say("\nreplayed \(rows.count) already-delivered messages (as a relay crash or a sweeper resend would) to show deduplication")
        return rows.count
    }

    private func verify(db: PGConnection, bootstrapServers: String, relay: RelayService, consumer: ConsumerService,
                        traffic: TrafficStats) async throws -> Bool {
        let written = try await count(db, "SELECT count(*) AS n FROM outbox")
        let books = try await count(db, "SELECT count(*) AS n FROM outbox WHERE topic = 'BOOK_SAVE'")
        let payments = try await count(db, "SELECT count(*) AS n FROM outbox WHERE topic = 'PAYMENT_SAVE'")
        let complete = try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'")
        let dead = try await count(db, "SELECT count(*) AS n FROM outbox WHERE status = 'DEAD'")
        let bookingRecords = try await count(db, "SELECT count(*) AS n FROM booking_record")
        let ledger = try await count(db, "SELECT count(*) AS n FROM payment_ledger")
        let distinctInKafka = try await distinctOutboxIDs(bootstrapServers: bootstrapServers, expected: written + traffic.replayed)
        let totals = consumer.totals
        let checks: [(String, Bool)] = [
            ("rows written = distinct rows in Kafka  (\(written) = \(distinctInKafka))", written == distinctInKafka),
            ("rows written = effects applied once    (\(written) = \(bookingRecords) booking records + \(ledger) ledger entries)",
             bookingRecords == books && ledger == payments),
            ("every row COMPLETE, none DEAD          (\(complete) COMPLETE, \(dead) DEAD)", complete == written && dead == 0),
            ("duplicates absorbed, not applied       (\(totals.duplicates) duplicates seen, \(traffic.replayed) replayed)",
             totals.duplicates >= traffic.replayed && totals.applied == written),
        ]
        say("""

            ── verification ─────────────────────────────────────────────
            bookings \(traffic.bookedCount), payments \(traffic.paidCount), refused \(traffic.refusedCount) (\(traffic.refusalReasons))
            relay published \(relay.health.published) (includes any at-least-once redeliveries)
            consumers applied \(totals.applied), duplicates \(totals.duplicates), dead-lettered \(totals.deadLettered)
            """)
        for (text, ok) in checks { say("\(ok ? "✔" : "✘") \(text)") }
        let allOK = checks.allSatisfy(\.1)
        say(allOK ? "all checks passed: nothing lost, every effect applied exactly once" : "VERIFICATION FAILED")
        return allOK
    }

    private func distinctOutboxIDs(bootstrapServers: String, expected: Int) async throws -> Int {
        try await runBlocking {
            let reader = try KafkaConsumer(configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, clientID: "demo-verifier"),
                                           groupID: "demo-verifier-\(UUID().uuidString)", logger: Logger(label: "verifier"))
            defer { reader.close() }
            try reader.subscribe([EventType.bookSave, EventType.paymentSave])
            var ids = Set<String>(), seen = 0
            var lastMessage: ContinuousClock.Instant?
            let deadline = ContinuousClock.now + .seconds(60)
            // Stop when all expected messages arrived, or 5 s after the last one (joining the
            // group takes a few seconds before the first).
            while seen < expected, ContinuousClock.now < deadline, lastMessage.map({ ContinuousClock.now - $0 < .seconds(5) }) ?? true {
                if let message = try reader.poll(timeout: .milliseconds(200)) {
                    seen += 1
                    lastMessage = ContinuousClock.now
                    if let id = message.header(RecordContract.Header.outboxID) { ids.insert(String(decoding: id, as: UTF8.self)) }
                }
            }
            return ids.count
        }
    }

    private func printProgress(traffic: TrafficStats, relay: RelayService, consumer: ConsumerService) {
        let written = traffic.bookedCount + traffic.paidCount
        let totals = consumer.totals
        let line = "  written \(written) | published \(relay.health.published) | applied \(totals.applied) | duplicates \(totals.duplicates) | in flight \(relay.health.eventsInFlight) | behind \(max(0, written - totals.applied))"
        // A live line on a terminal; plain lines when piped (CI logs).
        if isatty(STDOUT_FILENO) == 1 { say("\r\u{1B}[K" + line, terminator: "") } else { say(line) }
    }

    /// Unbuffered, so progress and messages interleave in order even when piped.
    private func say(_ text: String, terminator: String = "\n") { FileHandle.standardOutput.write(Data((text + terminator).utf8)) }

    private func count(_ db: PGConnection, _ sql: String) async throws -> Int { try await db.query(sql).single().int("n") }
}

/// Seats handed out once each, across writers.
final class SeatQueue: Sendable {
    private let seats: Mutex<[Int64]>
    init(_ seats: [Int64]) { self.seats = Mutex(seats) }
    func next() -> Int64? { seats.withLock { $0.popLast() } }
}

final class TrafficStats: @unchecked Sendable {
    private let counts = Mutex<(booked: Int, paid: Int, refused: [String: Int])>((0, 0, [:]))
    var replayed = 0
    func booked() { counts.withLock { $0.booked += 1 } }
    func paid() { counts.withLock { $0.paid += 1 } }
    /// Refusals are part of the traffic: a paid booking expires the user's wait token (the
    /// payment consumer's effect), so that user's later attempts are refused until they
    /// queue again; seats run out; balances run dry.
    func refused(_ error: BookingError) {
        let reason: String
        switch error {
        case .tokenExpired: reason = "token expired after a payment"
        case .tokenInvalid: reason = "token invalid"
        case .seatTaken: reason = "seat taken"
        case .insufficientBalance: reason = "insufficient balance"
        case .unknownSeat, .unknownBooking, .bookingNotPayable: reason = "other"
        }
        counts.withLock { $0.refused[reason, default: 0] += 1 }
    }
    var bookedCount: Int { counts.withLock { $0.booked } }
    var paidCount: Int { counts.withLock { $0.paid } }
    var refusedCount: Int { counts.withLock { $0.refused.values.reduce(0, +) } }
    var refusalReasons: String {
        let reasons = counts.withLock { $0.refused }
        guard !reasons.isEmpty else { return "none" }
        return reasons.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}

/// Ctrl-C / SIGTERM end the demo early but still clean up (the servers are child processes).
/// swift-service-lifecycle's `UnixSignalsSequence` installs the handlers (ignoring the
/// default action) and delivers the signals as an async sequence; this only records that
/// one arrived, so every loop of the demo can stop at its next check.
final class InterruptWatcher: Sendable {
    private let flag = Atomic<Bool>(false)
    private let signals: UnixSignalsSequence
    var fired: Bool { flag.load(ordering: .acquiring) }

    /// Returns once the handlers are installed, so a Ctrl-C right after it is not lost.
    init() async {
        signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
    }

    /// Records signals until the calling task is cancelled.
    func watch() async {
        for await _ in signals { flag.store(true, ordering: .releasing) }
    }
}
