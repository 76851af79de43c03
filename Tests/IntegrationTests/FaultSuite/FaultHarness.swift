import Consumers
import EphemeralServers
import Foundation
import KafkaClient
import PGOutput
import PostgresClient
import Synchronization
import Testing

/// Shared machinery of the fault-injection suite: a booking-event load that survives
/// PostgreSQL outages, slot-lag sampling, and the checker that runs after each scenario.
///
/// `OUTBOX_FAULT_SOAK=1` lengthens every scenario (more load, more kills); CI runs the
/// bounded default. `OUTBOX_FAULT_KILLS=N` sets the number of relay kill -9 cycles alone
/// (the 1,000-cycle loss check: `OUTBOX_FAULT_KILLS=1000 bash scripts/test --filter kill`).
enum Fault {
    static let soak = ProcessInfo.processInfo.environment["OUTBOX_FAULT_SOAK"] == "1"
    static func scaled(_ ci: Int, soak soakValue: Int) -> Int { soak ? soakValue : ci }
    static let relayKills = ProcessInfo.processInfo.environment["OUTBOX_FAULT_KILLS"].flatMap { Int($0) } ?? scaled(20, soak: 200)
}

/// Writes BOOK_SAVE rows whose payloads the consumers can apply, one small transaction at
/// a time, reconnecting when PostgreSQL goes away (its writes then fail, which is fine:
/// only committed rows count, and the oracle lists exactly those).
final class LoadGenerator: @unchecked Sendable {
    private let running = Atomic<Bool>(true)
    private var task: Task<Void, Never>?
    let failures = Atomic<Int>(0)

    init(url: String, rowsPerTransaction: ClosedRange<Int> = 1...5, keys: Int = 40, pauseMicros: UInt32 = 2_000, table: OutboxTable = .default) {
        task = Task { [self] in
            var connection: PGConnection?
            var n = 0
            while running.load(ordering: .relaxed) {
                do {
                    if connection == nil { connection = try await PGConnection.connect(url) }
                    n += 1
                    try await insertBookEvents(connection!, rows: Int.random(in: rowsPerTransaction), keys: keys, seed: n, table: table)
                    if pauseMicros > 0 { try await Task.sleep(for: .microseconds(Int(pauseMicros))) }
                } catch {
                    failures.add(1, ordering: .relaxed)
                    connection = nil
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        }
    }

    func stop() async {
        running.store(false, ordering: .relaxed)
        await task?.value
    }
}

/// BookEvent-shaped rows (the consumers apply them to booking_record) in one transaction.
func insertBookEvents(_ connection: PGConnection, rows: Int, keys: Int, seed: Int, topic: String = "BOOK_SAVE", type: String = "BOOK_SAVE",
                      table: OutboxTable = .default) async throws {
    try await connection.query("""
        INSERT INTO \(table.sql) (topic, mq_key, type, payload)
        SELECT $1, 'BOOK:' || ((g + $4) % $3), $5,
               jsonb_build_object('book', jsonb_build_object('bookingId', g + $4 * 100, 'seatId', (g + $4) % $3, 'userId', 1, 'price', 100, 'status', 'RESERVED'),
                                  'waitToken', jsonb_build_object('tokenId', 1, 'userId', 1, 'token', 't', 'status', 'ACTIVE'),
                                  'pad', repeat('x', 60))
        FROM generate_series(1, $2) g
        """, [.text(topic), .int(rows), .int(keys), .int(seed), .text(type)])
}

/// Samples the slot's lag while a scenario runs; reports the worst.
final class SlotLagSampler: @unchecked Sendable {
    private let worst = Atomic<Int>(0)
    private let running = Atomic<Bool>(true)
    private var task: Task<Void, Never>?

    init(url: String, slot: String) {
        task = Task { [self] in
            var conn: PGConnection?
            while running.load(ordering: .relaxed) {
                if conn == nil { conn = try? await PGConnection.connect(url) }
                if let c = conn, let lag = try? await c.query("SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 AS lag FROM pg_replication_slots WHERE slot_name = $1", [.text(slot)]).rows.first?.optionalInt64("lag") {
                    worst.store(max(worst.load(ordering: .relaxed), Int(lag)), ordering: .relaxed)
                } else { conn = nil }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func stop() async -> Int {
        running.store(false, ordering: .relaxed)
        await task?.value
        return worst.load(ordering: .relaxed)
    }
}

/// The checker: (1) every committed id reached Kafka at least once, (2) per key, first
/// deliveries follow commit order, (3) with consumers, every effect applied exactly once.
struct ScenarioReport: CustomStringConvertible {
    var name: String
    var check: DeliveryCheck
    var effectsApplied: Int?
    var effectsExpected: Int?
    var recovery: Duration?
    var worstSlotLag: Int
    /// Messages the sweeper re-sent (they carry `outbox-resend-attempt`).
    var resent = 0

    var effectsOK: Bool { effectsApplied == effectsExpected }

    var description: String {
        let recoveryText = recovery.map { String(format: "%.2f s", Double($0.components.seconds) + Double($0.components.attoseconds) * 1e-18) } ?? "-"
        let effects = effectsExpected.map { "\(effectsApplied ?? 0)/\($0)" } ?? "-"
        return "FAULT \(name): rows \(check.committed), delivered \(check.delivered), missing \(check.missing.count), duplicates \(check.duplicates), order violations \(check.orderViolations.count), effects \(effects), sweeper re-sends \(resent), recovery \(recoveryText), worst slot lag \(worstSlotLag) B"
    }
}

func checkScenario(_ name: String, db: PGConnection, oracle: CommitOrderOracle, bootstrapServers: String,
                   topics: [String] = ["BOOK_SAVE"], consumers: Bool, recovery: Duration?, worstSlotLag: Int) async throws -> ScenarioReport {
    let committed = try await oracle.committed(on: db)
    let messages = try await readMessages(bootstrapServers: bootstrapServers, topics: topics, count: .max,
                                          timeout: .seconds(180), idle: .seconds(5))
    let check = DeliveryCheck(committed: committed, messages: messages)
    var report = ScenarioReport(name: name, check: check, recovery: recovery, worstSlotLag: worstSlotLag)
    report.resent = messages.filter(\.isSweeperResend).count
    if consumers {
        let expected = committed.count
        _ = await eventually(timeout: .seconds(90)) {
            (try? await db.query("SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'").single().int("n")) == expected
        }
        report.effectsExpected = expected
        report.effectsApplied = try await db.query("SELECT count(*) AS n FROM booking_record").single().int("n")
        let complete = try await db.query("SELECT count(*) AS n FROM outbox WHERE status = 'COMPLETE'").single().int("n")
        #expect(complete == expected, "\(name): \(complete) of \(expected) rows COMPLETE")
    }
    print(report)
    FaultLedger.shared.record(report)
    #expect(check.isClean, "\(name): \(check)")
    if consumers { #expect(report.effectsOK, "\(name): effects \(report.effectsApplied ?? -1) != \(report.effectsExpected ?? -1)") }
    return report
}

/// Collects every scenario's report. After each scenario it prints the running summary
/// (`FAULT SUMMARY …`), so the last such line in the test output covers the whole suite
/// whatever order the scenarios ran in.
final class FaultLedger: @unchecked Sendable {
    static let shared = FaultLedger()
    private let reports = Mutex<[ScenarioReport]>([])

    func record(_ report: ScenarioReport) {
        let all = reports.withLock { $0.append(report); return $0 }
        print(Self.summary(all))
    }

    static func summary(_ all: [ScenarioReport]) -> String {
        let rows = all.reduce(0) { $0 + $1.check.committed }
        let duplicates = all.reduce(0) { $0 + $1.check.duplicates }
        let missing = all.reduce(0) { $0 + $1.check.missing.count }
        let order = all.reduce(0) { $0 + $1.check.orderViolations.count }
        let effectsBroken = all.filter { $0.effectsExpected != nil && !$0.effectsOK }.count
        let worst = all.compactMap { report in report.recovery.map { (report.name, $0) } }.max { $0.1 < $1.1 }
        let worstText = worst.map { String(format: "%.2f s (%@)", Double($0.1.components.seconds) + Double($0.1.components.attoseconds) * 1e-18, $0.0) } ?? "-"
        return "FAULT SUMMARY: \(all.count) scenarios, \(rows) rows checked, \(missing) missing, \(order) order violations, "
            + "\(duplicates) duplicates, \(effectsBroken) scenarios with effects not exactly once, worst recovery \(worstText)"
    }
}
