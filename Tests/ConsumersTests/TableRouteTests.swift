@testable import Consumers
import KafkaClient
import PGOutput
import Schema
import Testing

/// Which table a message's row is in: the `outbox-table` header, or public.outbox without
/// it; only a configured table is ever touched. No broker, no database.
@Suite("A consumer updates the row in the table its record came from, and only in a configured table")
struct TableRouteTests {
    static let teamA = try! OutboxTable(parsing: "team_a.outbox")
    static let teamB = try! OutboxTable(parsing: "team_b.outbox")

    /// The table, or the refusal's reason.
    enum Expected: Sendable {
        case success(OutboxTable)
        case failure(String)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let header: String?
        let configured: [OutboxTable]
        let expected: Expected
        var testDescription: String { "\(header ?? "(no header)") with \(configured.map(\.qualifiedName))" }
    }

    static let cases: [Case] = [
        // No header: public.outbox, as every record before several tables existed.
        Case(header: nil, configured: [.default], expected: .success(.default)),
        Case(header: nil, configured: [teamA, .default], expected: .success(.default)),
        Case(header: nil, configured: [teamA], expected: .failure("unknown_outbox_table")),
        // The header names the table.
        Case(header: "team_a.outbox", configured: [.default, teamA], expected: .success(teamA)),
        Case(header: "public.outbox", configured: [.default], expected: .success(.default)),
        Case(header: "outbox", configured: [.default], expected: .success(.default)),
        // A table this consumer is not configured for is never applied to another table.
        Case(header: "team_b.outbox", configured: [.default, teamA], expected: .failure("unknown_outbox_table")),
        Case(header: "team_a.outbox", configured: [.default], expected: .failure("unknown_outbox_table")),
        // Not a table name at all.
        Case(header: "Team_A.outbox", configured: [.default, teamA], expected: .failure("invalid_outbox_table")),
        Case(header: "a.b.c", configured: [.default], expected: .failure("invalid_outbox_table")),
        Case(header: "", configured: [.default], expected: .failure("invalid_outbox_table")),
        Case(header: "team_a.outbox; DROP TABLE x", configured: [.default, teamA], expected: .failure("invalid_outbox_table")),
    ]

    @Test("the header decides the table; absent means public.outbox; unknown and malformed names are refused", arguments: cases)
    func decide(_ c: Case) {
        let decided = TableRoute.decide(header: c.header.map { Array($0.utf8) }, configured: c.configured)
        switch (decided, c.expected) {
        case (.success(let table), .success(let expected)): #expect(table == expected)
        case (.failure(let refused), .failure(let reason)): #expect(refused.reason == reason, "\(refused.detail)")
        default: Issue.record("decided \(decided), expected \(c.expected)")
        }
    }

    @Test("an unknown table's refusal names the table, the configured ones and the fix")
    func unknownNamesTheFix() throws {
        let refused = try #require(TableRoute.decide(header: Array("team_b.outbox".utf8), configured: [.default, Self.teamA]).failureValue)
        #expect(refused.detail.contains("team_b.outbox") && refused.detail.contains("(public.outbox, team_a.outbox)"))
        #expect(refused.detail.contains("Fix: add it to outbox-tables"))
        let noHeader = try #require(TableRoute.decide(header: nil, configured: [Self.teamA]).failureValue)
        #expect(noHeader.detail.contains("no outbox-table header") && noHeader.detail.contains("public.outbox"))
    }

    static func message(table: String?, id: Int64 = 5) -> KafkaMessage {
        var headers: [(String, [UInt8])] = [("outbox-id", Array(String(id).utf8)), ("outbox-type", Array("BOOK_SAVE".utf8))]
        if let table { headers.append((RecordContract.Header.table, Array(table.utf8))) }
        let payload = #"{"book":{"bookingId":1,"seatId":2,"userId":3},"waitToken":{"tokenId":4}}"#
        return KafkaMessage(topic: "BOOK_SAVE", partition: 0, offset: 0, key: nil, value: Array(payload.utf8), headers: headers)
    }

    @Test("a parsed message carries its row's table and id; a record of an unconfigured table is poison")
    func parseCarriesTheTable() {
        let applier = EffectApplier(tables: [.default, Self.teamA])
        #expect(applier.parse(Self.message(table: nil)).row == OutboxRowKey(table: .default, id: 5))
        #expect(applier.parse(Self.message(table: "team_a.outbox")).row == OutboxRowKey(table: Self.teamA, id: 5))
        guard case .poison(let reason, _) = applier.parse(Self.message(table: "team_b.outbox")) else {
            Issue.record("a record of team_b.outbox was not refused"); return
        }
        #expect(reason == "unknown_outbox_table")
        // Default configuration: exactly public.outbox, as before several tables existed.
        guard case .poison(let defaultReason, _) = EffectApplier().parse(Self.message(table: "team_a.outbox")) else {
            Issue.record("a default consumer accepted team_a.outbox"); return
        }
        #expect(defaultReason == "unknown_outbox_table")
    }
}

extension Result {
    fileprivate var failureValue: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}
