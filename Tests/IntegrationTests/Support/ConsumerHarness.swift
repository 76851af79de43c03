@testable import Consumers
import Foundation
import KafkaClient
import Logging
import PGOutput
import PostgresClient
import Schema

/// Produces outbox rows to Kafka the way the relay does (key, payload, headers), so the
/// consumer tests do not depend on the relay. `times` > 1 simulates duplicates. The rows of
/// `table`; `tableHeader`, when given, is sent as the `outbox-table` header (the relay
/// sends it for every table but public.outbox).
func produceOutboxRows(_ ctx: TestContext, _ connection: PGConnection, times: Int = 1,
                       from table: OutboxTable = .default, tableHeader: String? = nil) async throws -> Int {
    let rows = try await connection.query("SELECT outbox_id, topic, mq_key, type, payload::text AS payload, created_at::text AS created FROM \(table.sql) ORDER BY outbox_id")
    let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers),
                                     logger: Logger(label: "test-producer"), onDelivery: { _ in })
    for _ in 0..<times {
        for row in rows.rows {
            _ = try await producer.send(topic: try row.string("topic"), key: Array(try row.string("mq_key").utf8),
                                        value: Array(try row.string("payload").utf8), headers: [
                                            ("outbox-id", Array(String(try row.int64("outbox_id")).utf8)),
                                            ("outbox-type", Array(try row.string("type").utf8)),
                                            ("outbox-created-at", Array(try row.string("created").utf8)),
                                        ] + (tableHeader.map { [(RecordContract.Header.table, Array($0.utf8))] } ?? []))
        }
    }
    await producer.close()
    return rows.rows.count
}

/// Books `count` seats with distinct users, writing `count` BOOK_SAVE outbox rows.
func bookSeats(_ connection: PGConnection, count: Int) async throws -> DomainSeed {
    let seed = try await DomainSeed.create(on: connection, seats: count, users: count)
    for (seat, user) in zip(seed.seatIds, seed.users) {
        _ = try await BookingFacade().reserveSeat(on: connection, seatId: seat, userId: user.userId, token: user.token)
    }
    return seed
}

struct RunningConsumer: Sendable {
    let service: ConsumerService
    let task: Task<Void, any Error>

    static func start(_ ctx: TestContext, group: String = "test-consumers", batchSize: Int = 64,
                      afterDatabaseCommit: (@Sendable () throws -> Void)? = nil,
                      beforeDatabaseApply: (@Sendable () -> Void)? = nil,
                      afterPrepare: (@Sendable (Int) -> Void)? = nil,
                      configure: (inout ConsumerConfiguration) -> Void = { _ in },
                      onStopOverrun: (@Sendable () -> Void)? = nil, logs: LogCapture? = nil) throws -> RunningConsumer {
        var configuration = ConsumerConfiguration(databaseURL: ctx.databaseURL,
                                                  kafka: KafkaConfiguration(bootstrapServers: ctx.bootstrapServers))
        configuration.groupID = group
        configuration.batchSize = batchSize
        configure(&configuration)
        var logger = logs?.logger(label: "consumer-under-test") ?? Logger(label: "consumer-under-test")
        logger.logLevel = ProcessInfo.processInfo.environment["RELAY_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? logs?.level ?? .warning
        let hooks = ConsumerHooks(afterDatabaseCommit: afterDatabaseCommit, beforeDatabaseApply: beforeDatabaseApply, afterPrepare: afterPrepare)
        let service = try ConsumerService(configuration: configuration, logger: logger, onStopOverrun: onStopOverrun, hooks: hooks)
        return RunningConsumer(service: service, task: Task { try await service.run() })
    }

    func stop() async throws {
        service.stop()
        try await task.value
    }
}

func count(_ connection: PGConnection, _ sql: String) async throws -> Int {
    try await connection.query(sql).single().int("n")
}
