import EphemeralServers
import Foundation
import PostgresClient
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct PGConnectionTests {
    @Test func rowRoundTripsWithNullsUnicodeByteaAndJsonb() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.connect()
            try await conn.query("CREATE TABLE t (id int, name text, note text, blob bytea, doc jsonb)")
            let name = "Zoë — 東京 🎫 'quoted' \"double\""
            let blob: [UInt8] = [0, 1, 2, 0xFF, 0x5C, 0x78, 0]
            try await conn.query("INSERT INTO t VALUES ($1, $2, $3, $4, $5)",
                                 [1, .text(name), nil, .bytea(blob), "{\"seat\": 7, \"who\": \"Zoë\"}"])
            let row = try await conn.query("SELECT id, name, note, blob, doc FROM t").single()
            #expect(try row.int("id") == 1)
            #expect(try row.string("name") == name)
            #expect(try row.optionalString("note") == nil)
            #expect(try row.isNull("note"))
            #expect(try row.bytea("blob") == blob)
            #expect(try row.string("doc") == "{\"who\": \"Zoë\", \"seat\": 7}")
            #expect(throws: PGError.self) { try row.string("note") }
            #expect(throws: PGError.self) { try row.int("name") }
        }
    }

    @Test func serverErrorsCarrySQLStateMessageAndDetail() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.connect()
            try await conn.query("CREATE TABLE u (id int PRIMARY KEY)")
            try await conn.query("INSERT INTO u VALUES (1)")
            let error = await #expect(throws: PGError.self) { try await conn.query("INSERT INTO u VALUES ($1)", [1]) }
            #expect(error?.sqlState == PGError.State.uniqueViolation)
            #expect(error?.code == .queryFailed)
            #expect(error?.detail?.contains("(id)=(1)") == true)
            #expect(error?.message.contains("duplicate key") == true)
        }
    }

    @Test func transactionRollsBackOnThrow() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.connect()
            try await conn.query("CREATE TABLE v (id int)")
            struct Boom: Error {}
            await #expect(throws: Boom.self) {
                try await conn.transaction { tx in
                    try await tx.query("INSERT INTO v VALUES (1)")
                    throw Boom()
                }
            }
            #expect(try await conn.query("SELECT count(*) AS n FROM v").single().int("n") == 0)
        }
    }

    @Test func listenReceivesNotifications() async throws {
        try await withTestContext(broker: false) { ctx in
            let listener = try await ctx.connect()
            try await listener.listen("outbox_events")
            let sender = try await ctx.connect()
            try await sender.query("SELECT pg_notify('outbox_events', 'x')")
            var received: [PGNotification] = []
            _ = await eventually(timeout: .seconds(5)) {
                received += (try? await listener.waitForNotifications(timeout: .milliseconds(200))) ?? []
                return !received.isEmpty
            }
            #expect(received.first?.channel == "outbox_events")
            #expect(received.first?.payload == "x")
        }
    }

    @Test func unreachablePostgresFailsFastNamingHostAndPortWithoutPassword() async throws {
        let port = freeLoopbackPort()  // nothing listens here
        let secret = "s3cr3t-Pa55"
        let started = ContinuousClock.now
        let error = await #expect(throws: PGError.self) {
            _ = try await PGConnection.connect("postgres://relay:\(secret)@127.0.0.1:\(port)/app", connectTimeoutSeconds: 3)
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        let text = String(describing: error!)
        #expect(error?.code == .connectionFailed)
        #expect(text.contains("127.0.0.1:\(port)"))
        #expect(text.contains("nothing accepts connections at that host and port"))
        #expect(!text.contains(secret))
    }

    @Test func silentServerTimesOutWithinTheConnectTimeout() async throws {
        // A socket that listens but never speaks: the kernel completes the TCP handshake,
        // so only libpq's connect_timeout can end the wait.
        let silent = SilentLoopbackListener()
        let port = silent.port
        let started = ContinuousClock.now
        let error = await #expect(throws: PGError.self) {
            _ = try await PGConnection.connect("host=127.0.0.1 port=\(port) user=relay password=hunter2 dbname=app", connectTimeoutSeconds: 2)
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .seconds(1) && elapsed < .seconds(6))
        let text = String(describing: error!)
        #expect(text.contains("127.0.0.1:\(port)"))
        #expect(!text.contains("hunter2"))
        withExtendedLifetime(silent) {}  // listening until here
    }

    @Test func redactionHidesPasswords() {
        #expect(ConnectionTarget.redact("postgres://relay:pw@db:5432/app?sslmode=verify-full") == "postgres://relay:***@db:5432/app?sslmode=verify-full")
        #expect(ConnectionTarget.redact("postgres://db/app?user=a&password=pw") == "postgres://db/app?user=a&password=***")
        #expect(ConnectionTarget.redact("host=db password=pw user=a") == "host=db password=*** user=a")
        #expect(ConnectionTarget(parsing: "postgres://relay:pw@db.example:6543/app").description == "db.example:6543/app as relay")
        #expect(ConnectionTarget(parsing: "host=h port=7 dbname=d user=u").description == "h:7/d as u")
    }
}
