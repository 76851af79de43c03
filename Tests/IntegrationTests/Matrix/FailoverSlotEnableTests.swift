import PostgresClient
@testable import Relay
import Testing

/// Issue 32, item 2: turning failover on for an existing slot never stops the relay. While
/// another walsender holds the slot (a rolling deploy), PostgreSQL refuses with 55006, and
/// notify mode has no replication connection: both are reported, and the session goes on.
/// No server needed: `execute` is a stand-in that fails as PostgreSQL does.
@Suite("Enabling failover on an existing slot")
struct FailoverSlotEnableTests {
    @Test("the slot held by another process: reported, retried at the next session")
    func heldByAnotherWalsender() {
        var commands: [String] = []
        let outcome = FailoverSlot.enable(slot: "outbox_relay", replicationCommands: true) { command in
            commands.append(command)
            throw PGError(code: .queryFailed, message: "replication slot \"outbox_relay\" is active for PID 4242",
                          sqlState: PGError.State.objectInUse)
        }
        #expect(commands == ["ALTER_REPLICATION_SLOT \"outbox_relay\" (FAILOVER true)"])
        guard case .notPossible(let why) = outcome else { Issue.record("\(outcome)"); return }
        #expect(why.contains("another process holds the slot") && why.contains("next session start"), "\(why)")
    }

    @Test("any other refusal names the command to run by hand")
    func otherRefusal() {
        let outcome = FailoverSlot.enable(slot: "s", replicationCommands: true) { _ in
            throw PGError(code: .queryFailed, message: "permission denied", sqlState: "42501")
        }
        guard case .notPossible(let why) = outcome else { Issue.record("\(outcome)"); return }
        #expect(why.contains("permission denied") && why.contains("ALTER_REPLICATION_SLOT \"s\" (FAILOVER true)"), "\(why)")
    }

    @Test("notify mode (no replication connection) sends nothing and says how to do it once")
    func notifyMode() {
        var called = false
        let outcome = FailoverSlot.enable(slot: "s", replicationCommands: false) { _ in
            called = true
            throw PGError(code: .queryFailed, message: "unexpected")
        }
        #expect(!called)
        guard case .notPossible(let why) = outcome else { Issue.record("\(outcome)"); return }
        #expect(why.contains("replication=database") && why.contains("ALTER_REPLICATION_SLOT"), "\(why)")
    }
}
