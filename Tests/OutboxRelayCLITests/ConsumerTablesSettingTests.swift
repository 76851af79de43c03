import CLISettings
import Consumers
@testable import OutboxRelayCLI
import Testing

/// `consume` reads the same `outbox-tables` setting as `run`: the tables whose rows it
/// completes. A record of any other table is dead-lettered, so a consumer left at the
/// default while the relay captures team_a.outbox would refuse team_a's records.
@Suite("consume: outbox-tables")
struct ConsumerTablesSettingTests {
    static func consumer(_ flags: [String: String]) throws -> ConsumerConfiguration {
        var all = flags
        all["database-url"] = "postgres://consumer@db:5432/app"
        return try ResolvedConfiguration(settings: try Settings(flags: all, environment: [:], fileText: nil, known: SettingsCatalog.names)).consumer()
    }

    @Test("public.outbox by default; the configured tables otherwise; a bad name is refused at start, naming the setting")
    func tables() throws {
        #expect(try Self.consumer([:]).tables.map(\.qualifiedName) == ["public.outbox"])
        #expect(try Self.consumer(["outbox-tables": "public.outbox, team_a.outbox"]).tables.map(\.qualifiedName) == ["public.outbox", "team_a.outbox"])
        #expect(throws: (any Error).self) { try Self.consumer(["outbox-tables": "Team_A.outbox"]) }
        do {
            _ = try Self.consumer(["outbox-tables": "team_a.outbox,team_a.outbox"])
            Issue.record("a table listed twice was accepted")
        } catch {
            #expect("\(error)".contains("outbox-tables") && "\(error)".contains("listed twice"), "\(error)")
        }
    }
}
