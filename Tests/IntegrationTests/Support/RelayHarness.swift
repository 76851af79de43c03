import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import Relay
import RelayCore

/// Runs a RelayService in-process against a test context, and stops it afterwards.
struct RunningRelay: Sendable {
    let service: RelayService
    let task: Task<Void, any Error>

    static func start(_ ctx: TestContext, slot: String? = nil, capture: CaptureMode = .stream,
                      sweeper: SweeperPolicy? = nil, retention: Duration? = nil, bootstrapServers: String? = nil,
                      configure: (inout RelayConfiguration) -> Void = { _ in },
                      onStopOverrun: (@Sendable () -> Void)? = nil, logger given: Logger? = nil) throws -> RunningRelay {
        var configuration = RelayConfiguration(databaseURL: ctx.databaseURL,
                                               kafka: KafkaConfiguration(bootstrapServers: bootstrapServers ?? ctx.bootstrapServers))
        configuration.slotName = slot ?? ctx.slotName
        configuration.capture = capture
        configuration.spillDirectory = NSTemporaryDirectory()
        // Debugging aid: RELAY_TEST_KAFKA="debug=eos,msg" passes librdkafka properties through.
        for pair in (ProcessInfo.processInfo.environment["RELAY_TEST_KAFKA"] ?? "").split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { configuration.kafka.properties[parts[0]] = parts[1] }
        }
        configure(&configuration)
        var logger = Logger(label: "relay-under-test")
        logger.logLevel = ProcessInfo.processInfo.environment["RELAY_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        let service = try RelayService(configuration: configuration, sweeper: sweeper, retention: retention, logger: given ?? logger,
                                       onStopOverrun: onStopOverrun)
        let task = Task { try await service.run() }
        return RunningRelay(service: service, task: task)
    }

    /// Graceful stop; rethrows what `run()` threw.
    func stop() async throws {
        service.stop()
        try await task.value
    }
}

/// Writes outbox rows with plain SQL (fast, any shape), `count` rows per transaction.
func insertOutboxRows(_ connection: PGConnection, transactions: Int, rowsPerTransaction: Int,
                      keys: Int = 50, keyPrefix: String = "BOOK:", topic: String = "BOOK_SAVE", padding: Int = 180) async throws {
    for _ in 0..<transactions {
        try await connection.query("""
            INSERT INTO outbox (topic, mq_key, type, payload)
            SELECT $1, $2 || (floor(random() * $3))::int, 'BOOK_SAVE', jsonb_build_object('n', g, 'pad', repeat('x', $5))
            FROM generate_series(1, $4) g
            """, [.text(topic), .text(keyPrefix), .int(keys), .int(rowsPerTransaction), .int(padding)])
    }
}

func slotConfirmedLSN(_ connection: PGConnection, slot: String) async throws -> LSN? {
    let rows = try await connection.query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [.text(slot)])
    return try rows.rows.first?.optionalLSN("lsn")
}

extension TestContext {
    /// Slot names are cluster-wide; tests share the cluster, so each gets its own.
    var slotName: String { "relay_\(databaseName)" }
}
