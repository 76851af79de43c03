import Foundation
@testable import OutboxRelayCLI
import Testing

/// Issue 32, item 6: a halt that needs an operator (exit 78) is not restarted forever. The
/// units restart on any other failure (outages, a drain that timed out), but not on 78:
/// in a failover run before this, a supervised relay exited 78 more than 200 times.
@Suite("deploy: systemd restart policy")
struct SystemdRestartTests {
    @Test("both units restart on failure but never on the operator-needed exit status")
    func noRestartOnOperatorHalt() throws {
        for unit in ["outbox-relay.service", "outbox-relay-consume.service"] {
            let text = try String(contentsOfFile: DeployKit.path("deploy/systemd/\(unit)"), encoding: .utf8)
            #expect(text.contains("\nRestart=on-failure\n"), "\(unit) must restart on failure")
            let prevented = DeployKit.matches(of: #"\nRestartPreventExitStatus=([0-9 ]+)\n"#, in: text)
                .flatMap { $0.split(separator: " ").compactMap { Int32($0) } }
            #expect(prevented.contains(ExitStatus.operatorNeeded.rawValue),
                    "\(unit) restarts after exit \(ExitStatus.operatorNeeded.rawValue), a halt restarting cannot fix")
        }
    }
}
