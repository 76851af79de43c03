import RelayCore
import Testing

/// A slot creation held by transactions in progress names them and the fix.
@Suite("Slot creation wait report")
struct SlotCreationWaitTests {
    typealias Holder = SlotCreationWait.Holder

    @Test("a session idle in a transaction: its process, database, user, application, state and age; the fix ends that one")
    func oneSession() {
        let report = SlotCreationWait.report(slot: "outbox_relay", waited: .seconds(35), holders: [
            Holder(pid: 4242, database: "billing", user: "bob", application: "psql", state: "idle in transaction", openSeconds: 612)])
        #expect(report.message.hasPrefix("creating replication slot \"outbox_relay\" has waited 35 s for transactions in progress"))
        #expect(report.message.hasSuffix("waiting for process 4242 (database billing, user bob, application psql, idle in transaction, transaction open 612 s)"))
        #expect(report.fix == "commit or roll back in that session, or end it: SELECT pg_terminate_backend(4242). The creation goes on by itself once they end")
    }

    @Test("columns a role may not read are left out; several sessions and a prepared transaction each get their fix")
    func severalAndPrepared() {
        let report = SlotCreationWait.report(slot: "s", waited: .seconds(5), holders: [
            Holder(pid: 10, database: "app", user: "etl", application: "", state: nil, openSeconds: nil),
            Holder(pid: 11),
            Holder(pid: 0)])
        #expect(report.message.hasSuffix("waiting for process 10 (database app, user etl), process 11, a prepared transaction (pg_prepared_xacts)"))
        #expect(report.fix.hasPrefix("commit or roll back in those sessions, or end them: SELECT pg_terminate_backend(10); SELECT pg_terminate_backend(11); "))
        #expect(report.fix.contains("COMMIT PREPARED or ROLLBACK PREPARED"))
        #expect(!report.fix.contains("pg_terminate_backend(0)"), "a prepared transaction has no session to end")
    }

    @Test("no holder visible, or the look-up failed: the cause in general and how to find them")
    func nothingVisible() {
        for holders in [[], nil] as [[Holder]?] {
            let report = SlotCreationWait.report(slot: "s", waited: .seconds(65), holders: holders)
            #expect(report.message.contains("has waited 65 s") && report.message.hasSuffix("none is visible to this role now"))
            #expect(report.fix.contains("pg_stat_activity WHERE backend_xid IS NOT NULL") && report.fix.contains("pg_prepared_xacts"))
        }
    }
}
