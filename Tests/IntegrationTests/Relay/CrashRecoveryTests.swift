import EphemeralServers
import Foundation
import PGOutput
import PostgresClient
import Synchronization
import Testing

@Suite("Relay process crashes")
struct CrashRecoveryTests {
    @Test("kill -9 the relay 10 times under load: nothing is lost; duplicates are counted; SIGTERM exits 0")
    func killNine() async throws {
        try await withTestContext { ctx in
            let db = try await ctx.migrated()
            let oracle = try await CommitOrderOracle.create(on: db)
            // Create the slot before the load so no row predates it.
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(ctx.slotName)])

            let writing = Atomic<Bool>(true)
            let writer = Task {
                let conn = try await ctx.connect()
                while writing.load(ordering: .relaxed) {
                    try await insertOutboxRows(conn, transactions: 1, rowsPerTransaction: Int.random(in: 1...40), keys: 30)
                }
            }
            var kills = 0
            for round in 0..<10 {
                let relay = try startRelayProcess(ctx, logName: "kill\(round)")
                try await Task.sleep(for: .milliseconds(Int.random(in: 700...1_500)))
                relay.signal(SIGKILL)
                #expect(await relay.waitForExit() == 128 + SIGKILL)
                kills += 1
            }
            writing.store(false, ordering: .relaxed)
            try await writer.value

            let final = try startRelayProcess(ctx, logName: "final")
            let committed = try await oracle.committed(on: db)
            let messages = try await readMessages(bootstrapServers: ctx.bootstrapServers, topics: ["BOOK_SAVE"],
                                                  count: .max, timeout: .seconds(120), idle: .seconds(4))
            let check = DeliveryCheck(committed: committed, messages: messages)
            print("kill -9 x\(kills): \(check)")
            #expect(check.isClean, "\(check)")
            let status = await final.terminate()
            #expect(status == 0, "graceful stop exit status \(status.map(String.init) ?? "none: still running 60 s after SIGTERM"):\n\(final.output.suffix(2_000))")
            try await oracle.drop(on: db)
        }
    }
}
