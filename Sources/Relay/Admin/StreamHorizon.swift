import PGOutput
import PostgresClient
import RelayCore

/// Waits until the running relay has published everything committed before a WAL position,
/// as its slot's confirmed position shows (every shard's slot on a sharded database). An
/// operator command that sends a row still INIT waits here first, so that it never delivers
/// such a row before the stream did (`BatchSettlement.mustWaitForStream`).
struct StreamHorizon {
    /// The slots whose confirmed position counts.
    let slots: [String]

    /// The relay's slot, or every shard's slot when the database is sharded.
    static func resolve(configuration: RelayConfiguration, on connection: PGConnection) async throws -> StreamHorizon {
        guard let count = try await ShardMigration.currentCount(on: connection, publicationBase: configuration.publication) else {
            return StreamHorizon(slots: [configuration.slotName])
        }
        return StreamHorizon(slots: ShardSpec.all(count: count).map { $0.slotName(base: configuration.slotName) })
    }

    /// Returns once every slot is confirmed at or past `watermark`; throws
    /// `RepublishStopped` (resume after `resumeAfter`) when a slot is missing, or `timeout`
    /// passes first (no relay running, or one far behind).
    func wait(past watermark: LSN, timeout: Duration, resumeAfter: Int64, on connection: PGConnection) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let rows = try await connection.query("""
                SELECT slot_name, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = ANY($1::text[])
                """, [.text("{" + slots.map { "\"\($0)\"" }.joined(separator: ",") + "}")]).rows
            var confirmed: [String: LSN] = [:]
            for row in rows { confirmed[try row.string("slot_name")] = try row.optionalLSN("confirmed") ?? .invalid }
            if let missing = slots.first(where: { confirmed[$0] == nil }) {
                throw RepublishStopped(resumeAfter: resumeAfter,
                                       cause: "slot \(missing) does not exist, so no relay has published the rows still INIT in this batch",
                                       fix: "start the relay (`outbox-relay run`, with the same --slot), or select rows that are not INIT")
            }
            let behind = slots.filter { confirmed[$0]! < watermark }
            if behind.isEmpty { return }
            if ContinuousClock.now >= deadline {
                throw RepublishStopped(resumeAfter: resumeAfter,
                                       cause: "the relay has not confirmed past \(watermark) within \(timeout) (slot \(behind[0]) at \(confirmed[behind[0]]!)), so rows still INIT in this batch may not be published yet",
                                       fix: "check that the relay runs and keeps up (`outbox-relay status`), or raise --stream-wait")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}
