import Foundation
import Testing

@Suite("outbox-relay run --header-style")
struct HeaderStyleCLITests {
    @Test("--header-style is a run flag, a --set name and a variable; a wrong value names the choices")
    func setting() async throws {
        let url = "postgres://x@127.0.0.1:1/db"
        let shown = try await runCLI(["run", "--database-url", url, "--header-style", "cloudevents", "--print-config"])
        #expect(shown.status == 0)
        #expect(shown.output.contains("header-style = cloudevents"), "\(shown.output)")

        let unset = try await runCLI(["run", "--database-url", url, "--print-config"],
                                     environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OUTBOX_RELAY_") })
        #expect(unset.output.contains("header-style = outbox  (default)"), "\(unset.output)")

        var environment = ProcessInfo.processInfo.environment
        environment["OUTBOX_RELAY_HEADER_STYLE"] = "kafka-connect"
        let wrong = try await runCLI(["run", "--database-url", url, "--http-port", "0"], environment: environment)
        #expect(wrong.status != 0)
        #expect(wrong.output.contains("header-style") && wrong.output.contains("outbox, debezium, cloudevents"), "\(wrong.output)")
    }
}
