import Foundation
import PGOutput
import PostgresClient
import Relay
import Schema
import Testing

/// `outbox-relay migrate --schema S` with the real binary on a real PostgreSQL: a team's own
/// outbox table, installed with the outbox's shape, published like public.outbox (also by
/// shard publications, with their row filter), given the notify trigger and the roles'
/// grants; a table of the wrong shape refused with its fix.
@Suite("Outbox tables in teams' schemas")
struct OutboxTableMigrationTests {
    static let teamA = try! OutboxTable(parsing: "team_a.outbox")
    static let teamB = try! OutboxTable(parsing: "team_b.outbox")

    func migrate(_ ctx: TestContext, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await runCLI(["migrate", "--database-url", ctx.databaseURL] + arguments)
    }

    /// The tables a publication carries, `schema.table`, and their row filters.
    func published(_ db: PGConnection, _ publication: String) async throws -> [String] {
        try await db.query("""
            SELECT schemaname || '.' || tablename || coalesce(' ' || rowfilter, '') AS item
            FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1
            """, [.text(publication)]).rows.map { try $0.string("item") }
    }

    /// Inserts `count` rows into `table` with distinct keys.
    func insertRows(_ db: PGConnection, into table: OutboxTable, count: Int) async throws {
        try await db.query("""
            INSERT INTO \(table.sql) (topic, mq_key, type, payload)
            SELECT 'ORDER_PLACED', 'ORDER:' || i, 'ORDER_PLACED', jsonb_build_object('i', i) FROM generate_series(1, $1) i
            """, [.int(Int64(count))])
    }

    /// How many inserts of `table` a slot decodes through `publication`.
    func decodedInserts(_ db: PGConnection, slot: String, publication: String) async throws -> Int {
        try await db.query("""
            SELECT count(*) FILTER (WHERE substr(data, 1, 1) = 'I') AS n
            FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)
            """, [.text(slot), .text(publication)]).single().int("n")
    }

    @Test("migrate --schema team_a creates team_a.outbox in the relay's publication, its rows decode through it, and a second run changes nothing")
    func installsAndIsIdempotent() async throws {
        try await withTestContext(broker: false) { ctx in
            let first = try await migrate(ctx, ["--schema", "team_a"])
            #expect(first.status == 0, "\(first.output)")
            #expect(first.output.contains("outbox table team_a.outbox: created, added to publication outbox_pub"), "\(first.output)")
            #expect(first.output.contains("next: add team_a.outbox to outbox-tables of the relay and of the consumers"), "\(first.output)")
            #expect(first.output.contains("outbox-tables = public.outbox,team_a.outbox"), "\(first.output)")
            let db = try await ctx.connect()
            #expect(try await published(db, "outbox_pub") == ["public.outbox", "team_a.outbox"])
            try await OutboxShapeCheck.check([.default, Self.teamA], on: db)

            // The publication really carries it: a slot decodes the team's rows.
            let slot = "probe_\(ctx.databaseName)"
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(slot)])
            try await insertRows(db, into: Self.teamA, count: 25)
            #expect(try await decodedInserts(db, slot: slot, publication: "outbox_pub") == 25)
            try await db.query("SELECT pg_drop_replication_slot($1)", [.text(slot)])

            let shapeBefore = try await CatalogShape.read(Self.teamA, on: db)
            let second = try await migrate(ctx, ["--schema", "team_a", "--set", "outbox-tables=public.outbox,team_a.outbox"])
            #expect(second.status == 0, "\(second.output)")
            #expect(second.output.contains("outbox table team_a.outbox: exists with the outbox's shape, already published"), "\(second.output)")
            #expect(!second.output.contains("next: add"), "listed already: \(second.output)")
            #expect(try await CatalogShape.read(Self.teamA, on: db) == shapeBefore)
            #expect(try await published(db, "outbox_pub") == ["public.outbox", "team_a.outbox"])
            #expect(try await db.query("SELECT count(*) AS n FROM team_a.outbox").single().int("n") == 25)

            // With a publication of another name that does not exist yet: nothing to add to.
            let custom = try await migrate(ctx, ["--schema", "team_c", "--set", "publication=team_pub"])
            #expect(custom.status == 0, "\(custom.output)")
            #expect(custom.output.contains("outbox table team_c.outbox: created\npublication team_pub does not exist yet"), "\(custom.output)")
        }
    }

    @Test("the template makes the shape migrations 0001, 0006 and 0007 give public.outbox: columns, defaults, constraints, indexes")
    func templateEqualsPublicOutbox() async throws {
        try await withTestContext(broker: false) { ctx in
            let db = try await ctx.migrated()
            _ = try await OutboxTableMigration.install(Self.teamA, on: db)
            let reference = try await CatalogShape.read(.default, on: db)
            let installed = try await CatalogShape.read(Self.teamA, on: db)
            #expect(installed.columns == reference.columns)
            #expect(installed.constraints == reference.constraints)
            #expect(installed.indexes == reference.indexes)
            #expect(reference.constraints.count == 4 && reference.indexes.count == 5, "\(reference)")
            // Another table name in the same schema: the names follow the table's.
            let orders = try OutboxTable(parsing: "team_a.orders_outbox")
            _ = try await OutboxTableMigration.install(orders, on: db)
            #expect(try await CatalogShape.read(orders, on: db) == reference)
        }
    }

    @Test("with shards, every shard publication carries the new table with the shard's row filter; --shards covers every table of outbox-tables, also after a reshard")
    func shards() async throws {
        try await withTestContext(broker: false) { ctx in
            let base = ["--slot", ctx.slotName]
            #expect(try await migrate(ctx, base + ["--shards", "2"]).status == 0)
            let added = try await migrate(ctx, base + ["--schema", "team_a"])
            #expect(added.status == 0, "\(added.output)")
            #expect(added.output.contains("added to publications outbox_pub, outbox_pub_0_of_2, outbox_pub_1_of_2"), "\(added.output)")
            let db = try await ctx.connect()
            for shard in 0..<2 {
                #expect(try await published(db, "outbox_pub_\(shard)_of_2") == [
                    "public.outbox (abs((hashtext(mq_key) % 2)) = \(shard))", "team_a.outbox (abs((hashtext(mq_key) % 2)) = \(shard))"])
            }

            // A table listed in outbox-tables and installed by the same run as a reshard: the
            // new shard publications carry all three.
            let tables = ["--set", "outbox-tables=public.outbox,team_a.outbox,team_b.outbox"]
            let reshard = try await migrate(ctx, base + tables + ["--schema", "team_b", "--shards", "3", "--reshard"])
            #expect(reshard.status == 0, "\(reshard.output)")
            for shard in 0..<3 {
                #expect(try await published(db, "outbox_pub_\(shard)_of_3") == ["public", "team_a", "team_b"].map {
                    "\($0).outbox (abs((hashtext(mq_key) % 3)) = \(shard))"
                })
            }
            #expect(try await migrate(ctx, base + tables + ["--shards", "3"]).output.contains("created publications []"))

            // Each of team_b's rows decodes in exactly one shard.
            let slot = "probe_\(ctx.databaseName)"
            try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [.text(slot)])
            try await insertRows(db, into: Self.teamB, count: 300)
            var perShard: [Int] = []
            for shard in 0..<3 { perShard.append(try await decodedInserts(db, slot: slot, publication: "outbox_pub_\(shard)_of_3")) }
            try await db.query("SELECT pg_drop_replication_slot($1)", [.text(slot)])
            #expect(perShard.reduce(0, +) == 300 && perShard.allSatisfy { $0 > 0 }, "\(perShard)")
        }
    }

    @Test("with --capture notify every outbox table gets the doorbell trigger; a plain migrate keeps it and gives a table it installs the trigger; --capture stream removes it from all of them")
    func notifyTrigger() async throws {
        try await withTestContext(broker: false) { ctx in
            let notify = try await migrate(ctx, ["--schema", "team_a", "--capture", "notify"])
            #expect(notify.status == 0, "\(notify.output)")
            #expect(notify.output.contains("notify trigger installed on public.outbox, team_a.outbox"), "\(notify.output)")
            let db = try await ctx.connect()
            #expect(try await NotifyTrigger.installed(on: db, table: .default) == .doorbell)
            #expect(try await NotifyTrigger.installed(on: db, table: Self.teamA) == .doorbell)
            // It rings for the team's table too, while the relay listens.
            try await db.query("INSERT INTO outbox_relay_doorbell (channel, listening) VALUES ('outbox_relay', true)")
            let listener = try await ctx.connect()
            try await listener.listen("outbox_relay")
            try await insertRows(db, into: Self.teamA, count: 1)
            #expect(try await !listener.waitForNotifications(timeout: .seconds(10)).isEmpty)

            // An upgrade's plain migrate, without the relay's config: notify capture stays, and
            // the table it installs rings too (the same function, the same channel).
            let plain = try await migrate(ctx, ["--schema", "team_b"])
            #expect(plain.status == 0, "\(plain.output)")
            #expect(plain.output.contains("capture: notify kept") && plain.output.contains("(added to team_b.outbox)"), "\(plain.output)")
            for table in [OutboxTable.default, Self.teamA, Self.teamB] {
                #expect(try await NotifyTrigger.installed(on: db, table: table) == .doorbell, "\(table)")
            }
            try await insertRows(db, into: Self.teamB, count: 1)
            #expect(try await !listener.waitForNotifications(timeout: .seconds(10)).isEmpty)

            let all = "outbox-tables=public.outbox,team_a.outbox,team_b.outbox"
            let stream = try await migrate(ctx, ["--set", all, "--capture", "stream"])
            #expect(stream.status == 0, "\(stream.output)")
            for table in [OutboxTable.default, Self.teamA, Self.teamB] {
                #expect(try await NotifyTrigger.installed(on: db, table: table) == .none, "\(table)")
            }
            #expect(try await db.query("SELECT to_regprocedure('outbox_relay_notify()') IS NULL AS gone").single().bool("gone"))
            let plainAgain = try await migrate(ctx, ["--set", all])
            #expect(plainAgain.output.contains("capture: stream (no notify trigger"), "\(plainAgain.output)")
            #expect(try await NotifyTrigger.installed(on: db, table: .default) == .none)
        }
    }

    @Test("an existing team_b.outbox without mq_key, or with a text payload, is refused with exit 78 naming the column and the fix; nothing is published")
    func wrongShapeRefused() async throws {
        try await withTestContext(broker: false) { ctx in
            let db = try await ctx.migrated()
            try await db.executeScript("""
                CREATE SCHEMA team_b;
                CREATE TABLE team_b.outbox (outbox_id bigserial PRIMARY KEY, topic text NOT NULL, type text NOT NULL,
                    status text NOT NULL DEFAULT 'INIT', payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                    attempts integer NOT NULL DEFAULT 0, last_sent_at timestamptz, last_error text);
                """)
            let missing = try await migrate(ctx, ["--schema", "team_b"])
            #expect(missing.status == 78, "\(missing.output)")
            #expect(missing.output.contains("team_b.outbox column mq_key: found no such column; needed mq_key text NOT NULL"), "\(missing.output)")
            #expect(missing.output.contains("Fix: ALTER TABLE \"team_b\".\"outbox\" ADD COLUMN mq_key text NOT NULL;"), "\(missing.output)")
            #expect(missing.output.contains("`outbox-relay migrate --schema team_b`"), "\(missing.output)")
            #expect(try await published(db, "outbox_pub") == ["public.outbox"])

            try await db.query("ALTER TABLE team_b.outbox ADD COLUMN mq_key text NOT NULL, ALTER COLUMN payload TYPE text")
            let payload = try await migrate(ctx, ["--schema", "team_b"])
            #expect(payload.status == 78, "\(payload.output)")
            #expect(payload.output.contains("team_b.outbox column payload: found type text; needed type jsonb"), "\(payload.output)")
            #expect(payload.output.contains("ALTER COLUMN payload TYPE jsonb USING payload::jsonb"), "\(payload.output)")

            // The fix the message gives works; then the table is kept as it is and published.
            try await db.query("ALTER TABLE team_b.outbox ALTER COLUMN payload TYPE jsonb USING payload::jsonb")
            let fixed = try await migrate(ctx, ["--schema", "team_b"])
            #expect(fixed.status == 0, "\(fixed.output)")
            #expect(fixed.output.contains("team_b.outbox: exists with the outbox's shape, added to publication outbox_pub"), "\(fixed.output)")
            #expect(try await published(db, "outbox_pub") == ["public.outbox", "team_b.outbox"])

            // A table of outbox-tables that does not exist is refused too, with the command
            // that installs it; a bad schema name is a usage error.
            let unlisted = try await migrate(ctx, ["--set", "outbox-tables=public.outbox,team_c.outbox"])
            #expect(unlisted.status == 78, "\(unlisted.output)")
            #expect(unlisted.output.contains("team_c.outbox: found no such table") && unlisted.output.contains("outbox-relay migrate --schema team_c"),
                    "\(unlisted.output)")
            let badName = try await migrate(ctx, ["--schema", "Team-C"])
            #expect(badName.status == 64 && badName.output.contains("lower-case"), "\(badName.output)")
        }
    }

    @Test("--grant-roles gives the roles the same privileges on team_a.outbox as on public.outbox; the shape check works as the relay role, also on a schema it may not use")
    func grants() async throws {
        try await withTestContext(broker: false) { ctx in
            let suffix = ctx.databaseName
            let relay = "relay_\(suffix)", consumer = "consumer_\(suffix)"
            let result = try await migrate(ctx, ["--schema", "team_a", "--grant-roles", "--relay-role", relay, "--consumer-role", consumer])
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("granted (also on team_a.outbox)"), "\(result.output)")
            let db = try await ctx.connect()
            for role in [relay, consumer] {
                let reference = try await privileges(db, role: role, table: .default)
                #expect(try await privileges(db, role: role, table: Self.teamA) == reference, "\(role)")
                #expect(reference.contains("table SELECT") && reference.contains("column status UPDATE"), "\(reference)")
            }
            // As the relay role: reads the team's rows and updates the sweeper's columns only.
            try await insertRows(db, into: Self.teamA, count: 2)
            let asRelay = try await PGConnection.connect(ctx.postgres.url(database: ctx.databaseName, user: relay))
            try await asRelay.query("UPDATE team_a.outbox SET attempts = attempts + 1")
            let payloadUpdate = await #expect(throws: PGError.self) { try await asRelay.query("UPDATE team_a.outbox SET payload = '{}'") }
            #expect(payloadUpdate?.sqlState == "42501")

            // The relay's start-up check, as the relay role, also on a schema it may not use:
            // the catalog answers, so the error is the table's shape, not a permission.
            try await db.executeScript("""
                CREATE SCHEMA team_b;
                CREATE TABLE team_b.outbox (LIKE public.outbox INCLUDING ALL);
                ALTER TABLE team_b.outbox ALTER COLUMN payload TYPE text;
                """)
            try await OutboxShapeCheck.check([.default, Self.teamA], on: asRelay)
            let teamC = try OutboxTable(parsing: "team_c.outbox")
            let shapeError = await #expect(throws: OutboxShapeError.self) {
                try await OutboxShapeCheck.check([.default, Self.teamA, Self.teamB, teamC], on: asRelay)
            }
            #expect(shapeError?.problems.map { "\($0.table) \($0.column ?? "-") \($0.found)" } == [
                "team_b.outbox payload type text", "team_c.outbox - no such table"], "\(String(describing: shapeError))")
            try await db.query("DROP OWNED BY \(quoteIdentifier(relay)), \(quoteIdentifier(consumer))")
            try await db.query("DROP ROLE \(quoteIdentifier(relay)), \(quoteIdentifier(consumer))")
        }
    }

    /// Every table and column privilege `role` holds on `table`, and USAGE on its schema.
    func privileges(_ db: PGConnection, role: String, table: OutboxTable) async throws -> [String] {
        try await db.query("""
            SELECT 'schema USAGE' AS p WHERE has_schema_privilege($1, $3, 'USAGE')
            UNION ALL
            SELECT 'table ' || p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
            WHERE has_table_privilege($1, $2, p)
            UNION ALL
            SELECT 'column ' || a.attname || ' ' || p FROM pg_attribute a, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) p
            WHERE a.attrelid = $2::regclass AND a.attnum > 0 AND NOT a.attisdropped AND has_column_privilege($1, $2, a.attname, p)
            ORDER BY 1
            """, [.text(role), .text(table.sql), .text(table.schema)]).rows.map { try $0.string("p") }
    }
}

/// A table's columns, constraints and indexes as the catalog prints them, with the table's
/// own names written as `S.T` and `T_…` so tables in different schemas compare, and a
/// sequence default of the table's own sequence written as `serial`.
struct CatalogShape: Equatable, CustomStringConvertible {
    var columns: [String]
    var constraints: [String]
    var indexes: [String]

    var description: String { "columns \(columns)\nconstraints \(constraints)\nindexes \(indexes)" }

    static func read(_ table: OutboxTable, on db: PGConnection) async throws -> CatalogShape {
        let parameters: [PGValue] = [.text(table.sql)]
        func normalize(_ text: String) -> String {
            text.replacingOccurrences(of: "\(table.schema).\(table.name)", with: "S.T")
                .replacingOccurrences(of: " ON \(table.name) ", with: " ON S.T ")
                .replacingOccurrences(of: "INDEX \(table.name)_", with: "INDEX T_")
        }
        func normalizeName(_ name: String) -> String {
            name.hasPrefix(table.name + "_") ? "T_" + name.dropFirst(table.name.count + 1) : name
        }
        let columns = try await db.query("""
            SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                   || coalesce(' DEFAULT ' || CASE
                        WHEN pg_get_expr(d.adbin, d.adrelid)
                             = format('nextval(%L::regclass)', pg_get_serial_sequence($1, a.attname)::regclass::text) THEN 'serial'
                        ELSE pg_get_expr(d.adbin, d.adrelid) END, '') AS c
            FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
            """, parameters).rows.map { try $0.string("c") }
        let constraints = try await db.query("""
            SELECT conname::text AS name, pg_get_constraintdef(oid) || CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END AS c
            FROM pg_constraint WHERE conrelid = $1::regclass AND contype <> 'n'  -- 18 catalogues NOT NULL too; the columns carry it
            """, parameters).rows.map { "\(normalizeName(try $0.string("name"))) \(try $0.string("c"))" }
        let indexes = try await db.query("SELECT pg_get_indexdef(indexrelid) AS c FROM pg_index WHERE indrelid = $1::regclass",
                                         parameters).rows.map { normalize(try $0.string("c")) }
        return CatalogShape(columns: columns, constraints: constraints.sorted(), indexes: indexes.sorted())
    }
}
