import Consumers
import Testing

@Suite("database failures: which poison a message, which stall the batch")
struct DatabaseFailureTests {
    @Test("a message's own data poisons it: data exceptions, constraints, size limits, a trigger's RAISE",
          arguments: ["22P02", "22003", "22021", "23505", "23514", "23503", "23502", "54000", "P0001"])
    func dataRejections(state: String) {
        #expect(DatabaseFailure(sqlState: state) == .rejectedData)
    }

    @Test("what every message would meet is the operator's: a missing table, column or privilege, a read-only server, internal errors",
          arguments: ["42P01", "42703", "42501", "42883", "25006", "55000", "0A000", "XX000", "58030", "40002", "3D000"])
    func operatorProblems(state: String) {
        #expect(DatabaseFailure(sqlState: state) == .operatorProblem)
    }

    @Test("a missing table, column or schema names migrate and outbox-tables; a missing privilege names the grants; others have no fix to name")
    func fixes() {
        for state in ["42P01", "42703", "3F000"] {
            #expect(DatabaseFailure.fix(sqlState: state)?.contains("run `outbox-relay migrate`") == true, "\(state)")
            #expect(DatabaseFailure.fix(sqlState: state)?.contains("outbox-tables") == true, "\(state)")
        }
        #expect(DatabaseFailure.fix(sqlState: "42501")?.contains("sql/roles.sql") == true)
        for state in ["25006", "XX000", "08006", "23505", nil] as [String?] {
            #expect(DatabaseFailure.fix(sqlState: state) == nil, "\(state ?? "nil")")
        }
    }

    @Test("connection loss, serialization failures, deadlocks, shutdown, resources and no SQLSTATE at all are retried as they are",
          arguments: ["08006", "08003", "40001", "40P01", "57P01", "57014", "53300", "53100"])
    func transient(state: String) {
        #expect(DatabaseFailure(sqlState: state) == .transient)
        #expect(DatabaseFailure(sqlState: nil) == .transient)
        #expect(DatabaseFailure(sqlState: "") == .transient)
    }
}
