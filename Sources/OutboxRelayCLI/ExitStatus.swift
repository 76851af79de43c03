import ArgumentParser
import Relay
import Schema

/// Every exit status of `outbox-relay`, in one place. Supervisors (systemd, Kubernetes, a
/// monitoring check) act on the number, so each one means one thing; docs/operations.md's
/// "Exit codes" table and `outbox-relay --help` are written from this list and a test runs
/// the binary into each of them. Numbers above 63 follow BSD sysexits.h.
enum ExitStatus: Int32, CaseIterable {
    /// Stopped on SIGTERM/SIGINT with everything published acknowledged and confirmed; or a
    /// command finished.
    case success = 0
    /// An error not listed below; the message says what and how to fix it.
    case failure = 1
    /// `status`: a `--max-*` threshold was crossed (or the slot is missing, or a migration).
    case thresholdCrossed = 2
    /// EX_USAGE: bad flag, unknown setting, or a value that does not parse or is out of range.
    case usage = 64
    /// EX_UNAVAILABLE: PostgreSQL or Kafka unreachable at start (nothing answered), or the
    /// HTTP port taken. Nothing was done; retrying later may work. (Outages after start are
    /// retried, never fatal.) `redrive`/`replay`: Kafka, or the relay's stream they wait
    /// for, stopped the run; the message gives the `--after-id` that resumes it.
    case unavailable = 69
    /// EX_TEMPFAIL: `run` stopped at drain-timeout with events unacknowledged; they were
    /// not confirmed and the next start publishes them again. `consume`: the stop passed
    /// drain-timeout; its last batch may be delivered again (and deduplicated).
    case unacknowledgedAtStop = 75
    /// EX_CONFIG: a halt that needs an operator (slot lost, invalidated or moved, wrong
    /// wal_level or privileges, schema not migrated, an outbox table of the wrong shape), or a server that answered and refused
    /// the connection settings at start (a certificate from another CA or for another host
    /// name, a wrong password, no pg_hba.conf line; Kafka SASL or TLS refused: `StartFailure`).
    /// Restarting alone will not help: read the message's Fix.
    case operatorNeeded = 78

    var meaning: String {
        switch self {
        case .success: return "clean stop (SIGTERM/SIGINT, everything confirmed) or command done"
        case .failure: return "other error (the message names it and the fix)"
        case .thresholdCrossed: return "status: a threshold was crossed"
        case .usage: return "usage: bad flag or setting (EX_USAGE)"
        case .unavailable: return "PostgreSQL, Kafka or the HTTP port unavailable at start, or a redrive/replay stopped by Kafka or the relay (EX_UNAVAILABLE)"
        case .unacknowledgedAtStop: return "run/consume: stopped at drain-timeout with work unfinished, taken up again by the next start (EX_TEMPFAIL)"
        case .operatorNeeded: return "halted, schema not migrated, or TLS/credentials refused at start; an operator must act, see the Fix in the message (EX_CONFIG)"
        }
    }

    /// The text for `--help`.
    static var helpText: String {
        "Exit status: " + allCases.map { "\($0.rawValue) \($0.meaning)" }.joined(separator: "; ") + "."
    }

    /// The status an error ends the process with, and the message to print (nil when
    /// ArgumentParser prints its own).
    static func of(_ error: any Error) -> (status: ExitStatus, message: String)? {
        switch error {
        case let error as RelayError where error.isHalting: return (.operatorNeeded, error.description)
        // An outbox table without the outbox's shape: only its owner's ALTER TABLE helps.
        case let error as OutboxShapeError: return (.operatorNeeded, error.description)
        case let error as CLIError: return (error.status, error.description)
        default: return nil
        }
    }
}

/// An error the CLI reports itself: the message names the problem and the fix; `status`
/// is the exit status it ends the process with.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    var status: ExitStatus
    init(_ description: String, status: ExitStatus = .failure) {
        self.description = description
        self.status = status
    }
}
