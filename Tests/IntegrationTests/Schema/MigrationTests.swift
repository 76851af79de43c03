import Foundation
import PostgresClient
@testable import Schema
import Testing

@Suite("Schema migrations")
struct MigrationTests {
    @Test("migrations apply once; a second run is a no-op")
    func idempotent() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.connect()
            let first = try await MigrationRunner().run(on: conn)
            #expect(first.applied == Migration.all.map(\.name))
            let second = try await MigrationRunner().run(on: conn)
            #expect(second.applied.isEmpty)
            #expect(second.alreadyApplied == Migration.all.count)
            #expect(try await MigrationRunner().pending(on: conn).isEmpty)
            let publication = try await conn.query("SELECT pubinsert, pubupdate, pubdelete FROM pg_publication WHERE pubname = 'outbox_pub'").single()
            #expect(try publication.bool("pubinsert") && !publication.bool("pubupdate") && !publication.bool("pubdelete"))
            let tables = try await conn.query("SELECT tablename FROM pg_publication_tables WHERE pubname = 'outbox_pub'")
            #expect(try tables.rows.map { try $0.string("tablename") } == ["outbox"])
        }
    }

    @Test("five runners at once apply each migration exactly once")
    func concurrent() async throws {
        try await withTestContext(broker: false) { ctx in
            let reports = try await withThrowingTaskGroup(of: MigrationRunner.Report.self) { group in
                for _ in 0..<5 {
                    group.addTask { try await MigrationRunner().run(on: try await ctx.connect()) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(reports.flatMap(\.applied).sorted() == Migration.all.map(\.name).sorted())
            let recorded = try await ctx.connect().query("SELECT count(*) AS n FROM outbox_schema_migrations").single().int("n")
            #expect(recorded == Migration.all.count)
        }
    }

    @Test("an applied migration whose file was edited is refused, naming the file")
    func tampered() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.connect()
            try await MigrationRunner().run(on: conn)
            var edited = Migration.all
            edited[1] = Migration(version: 2, name: edited[1].name, sql: edited[1].sql + "\n-- sneaky edit\n")
            let error = await #expect(throws: SchemaError.self) { try await MigrationRunner(migrations: edited).run(on: conn) }
            #expect(error == .tamperedMigration(name: "0002_booking_domain.sql", recordedAs: "0002_booking_domain.sql"))
            #expect("\(error!)".contains("0002_booking_domain.sql"))
        }
    }

    @Test("a failing migration rolls back completely and names the file")
    func failingMigrationRollsBack() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.connect()
            let broken = [Migration(version: 1, name: "0001_broken.sql", sql: "CREATE TABLE half_done (id int); SELECT no_such_function();")]
            let error = await #expect(throws: SchemaError.self) { try await MigrationRunner(migrations: broken).run(on: conn) }
            #expect("\(error!)".contains("0001_broken.sql"))
            #expect(try await conn.query("SELECT to_regclass('half_done') IS NULL AS gone").single().bool("gone"))
            #expect(try await MigrationRunner(migrations: broken).pending(on: conn) == ["0001_broken.sql"])
        }
    }

    @Test("the server-side checksum is standard SHA-256 hex (FIPS 180-4 vectors)")
    func checksumVectors() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.connect()
            let vectors: [([UInt8], String)] = [
                ([], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
                (Array("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
                (Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
                ([UInt8](repeating: 0x61, count: 1_000_000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
                // Non-ASCII text: the bytes go as bytea, so no encoding conversion touches them.
                (Array("Zürich → 東京".utf8), try await sha256sum(Array("Zürich → 東京".utf8))),
            ]
            for (bytes, expected) in vectors {
                let digest = try await conn.query("SELECT \(MigrationRunner.checksumSQL("$1")) AS d", [.bytea(bytes)]).single().string("d")
                #expect(digest == expected)
            }
        }
    }

    /// 0006 rewrote the topic check for speed; it must accept exactly what 0001's did, and
    /// upgrade a table that already holds rows.
    @Test("the rewritten topic check accepts and refuses exactly what the original did, and upgrades a table with rows")
    func topicCheckRewrite() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.connect()
            let before = Migration.all.filter { $0.version < 6 }
            try await MigrationRunner(migrations: before).run(on: conn)
            try await conn.query("INSERT INTO outbox (topic, mq_key, type, payload) VALUES ('BOOK_SAVE', 'BOOK:1', 'BOOK_SAVE', '{}')")
            let report = try await MigrationRunner(migrations: Migration.all.filter { $0.version <= 6 }).run(on: conn)
            #expect(report.applied == ["0006_cheaper_topic_check.sql"])
            let validated = try await conn.query("SELECT convalidated FROM pg_constraint WHERE conname = 'outbox_topic_check'").single()
            #expect(try validated.bool("convalidated"))

            let candidates = ["BOOK_SAVE", "a", "a.b-c_D9", String(repeating: "t", count: 249), String(repeating: "t", count: 250),
                              "", "with space", "semi;colon", "é", "tab\t", "new\nline", "BOOK_SAVE\n", "slash/topic", "ünïcode", "star*"]
            for topic in candidates {
                let original = try await conn.query("SELECT $1::text ~ '^[a-zA-Z0-9._-]{1,249}$' AS ok", [.text(topic)]).single().bool("ok")
                var accepted = true
                do {
                    try await conn.query("INSERT INTO outbox (topic, mq_key, type, payload) VALUES ($1, 'k', 'T', '{}')", [.text(topic)])
                } catch let error as PGError {
                    #expect(error.sqlState == "23514", "\(String(reflecting: topic)): \(error)")
                    accepted = false
                }
                #expect(accepted == original, "topic \(String(reflecting: topic))")
            }
        }
    }

    /// The checksums the earlier in-process SHA-256 recorded were the lower-case hex digest
    /// of each migration's UTF-8 bytes (that implementation was checked against the FIPS
    /// vectors). This writes a migrations table exactly as that code left it, with digests
    /// from `sha256sum`, and checks that the server-side checksum accepts every row.
    @Test("a database migrated by the earlier in-process checksum code is accepted unchanged")
    func acceptsChecksumsRecordedByEarlierCode() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.connect()
            try await MigrationRunner().run(on: conn)
            try await conn.query("UPDATE outbox_schema_migrations SET checksum = 'cleared'")
            for migration in Migration.all {
                try await conn.query("UPDATE outbox_schema_migrations SET checksum = $2 WHERE version = $1",
                                     [.int(migration.version), .text(try await sha256sum(Array(migration.sql.utf8)))])
            }
            let report = try await MigrationRunner().run(on: conn)
            #expect(report.applied.isEmpty)
            #expect(report.alreadyApplied == Migration.all.count)
        }
    }
}

/// Hex SHA-256 from coreutils' `sha256sum`, an implementation independent of PostgreSQL.
private func sha256sum(_ bytes: [UInt8]) async throws -> String {
    let input = NSTemporaryDirectory() + "outbox-sha256-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: input) }
    try Data(bytes).write(to: URL(fileURLWithPath: input))
    let (status, output) = try await runTool(["/usr/bin/sha256sum", input])
    guard status == 0 else { throw CheckerError("sha256sum exited with \(status): \(output)") }
    return String(output.prefix(64))
}
