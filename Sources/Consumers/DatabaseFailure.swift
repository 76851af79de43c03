/// What a failed statement means for the batch that ran it, by SQLSTATE class.
///
/// Only a refusal of a message's own data may poison that message. A refusal that every
/// message would meet (a table or privilege missing after a deploy, a read-only server) is
/// the operator's to fix: dead-lettering would send every message of every batch to the
/// dead-letter topic while the effects are never applied, so the batch is retried instead,
/// its offsets held, and the consumer reports itself stalled until the fix lands.
public enum DatabaseFailure: Sendable, Equatable {
    /// Connection loss (08), serialization failure or deadlock (40001, 40P01), shutdown or
    /// cancel (57), resources (53), or no SQLSTATE at all (the connection broke): retry.
    case transient
    /// The message's data: a data exception (22: JSON that jsonb refuses, a number out of
    /// range), an integrity constraint (23), a program limit its size reached (54: an index
    /// row too large), a trigger's own verdict (P0: RAISE). Poison that message only.
    case rejectedData
    /// Anything else: syntax or access (42: undefined table, insufficient privilege), a
    /// read-only transaction (25006), an object in the wrong state (55), an internal or
    /// system error (XX, 58). Retry the batch; the consumer is stalled until it applies.
    case operatorProblem

    public init(sqlState: String?) {
        guard let state = sqlState, state.count == 5 else { self = .transient; return }
        let stateClass = state.prefix(2)
        switch stateClass {
        case "08", "53", "57": self = .transient
        case "40": self = state == "40001" || state == "40P01" ? .transient : .operatorProblem
        case "22", "23", "54", "P0": self = .rejectedData
        default: self = .operatorProblem
        }
    }

    /// The fix for a refusal an operator must act on, when its SQLSTATE says which, for
    /// the stall reason (`/readyz`): a missing table, column or schema is a database not
    /// migrated (migration 0009 added the effect tables' `outbox_table`) or an
    /// `outbox-tables` entry that names no table; a missing privilege is a grant.
    public static func fix(sqlState: String?) -> String? {
        switch sqlState {
        case "42P01", "42703", "3F000":
            "Fix: run `outbox-relay migrate`, and check that every table in outbox-tables exists."
        case "42501":
            "Fix: grant the consumer role what sql/roles.sql grants (`outbox-relay migrate --grant-roles`), on every table in outbox-tables and its schema."
        default:
            nil
        }
    }
}
