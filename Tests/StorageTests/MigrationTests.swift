#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Testing
import Postgres
@testable import Storage

@Suite("Migration files")
struct MigrationParsingTests {
    @Test("up and down parts, version and name from the file name")
    func parses() throws {
        let migration = try Migration.parse(fileName: "0007_add_things.sql",
                                            text: "-- comment\n-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n")
        #expect(migration.version == 7)
        #expect(migration.name == "add_things")
        #expect(migration.up.contains("CREATE TABLE t"))
        #expect(!migration.up.contains("DROP"))
        #expect(migration.down.contains("DROP TABLE t"))
        #expect(migration.checksum.count == 64)
    }

    @Test("the checksum changes with any byte of the file")
    func checksum() throws {
        let a = try Migration.parse(fileName: "0001_a.sql", text: "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n")
        let b = try Migration.parse(fileName: "0001_a.sql", text: "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 3;\n")
        #expect(a.checksum != b.checksum)
    }

    @Test("malformed files are refused with the reason", arguments: [
        ("x_a.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\n"),
        ("0001_a.txt", "-- migrate:up\nSELECT 1;\n-- migrate:down\n"),
        ("0001_a.sql", "SELECT 1;\n-- migrate:up\nSELECT 1;\n-- migrate:down\n"),
        ("0001_a.sql", "-- migrate:up\nSELECT 1;\n"),
        ("0001_a.sql", "-- migrate:down\nSELECT 1;\n-- migrate:up\nSELECT 1;\n"),
        ("0001_a.sql", "-- migrate:up\n\n-- migrate:down\nSELECT 1;\n"),
    ])
    func malformed(name: String, text: String) {
        #expect(throws: MigrationError.self) { try Migration.parse(fileName: name, text: text) }
    }

    @Test("the repository's migrations load, in order, with unique versions")
    func repositoryMigrations() throws {
        let migrations = try Migration.load(directory: repositoryMigrationsDirectory)
        #expect(!migrations.isEmpty)
        #expect(migrations.map(\.version) == migrations.map(\.version).sorted())
        #expect(Set(migrations.map(\.version)).count == migrations.count)
    }
}

private func tables(_ db: PostgresConnection) throws -> Set<String> {
    Set(try db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").map { try $0.decode("tablename", as: String.self) })
}

@Suite("MigrationRunner against a real server", .serialized,
       .enabled(if: adminURL != nil || isCI, "KG_TEST_DIRECT_DATABASE_URL is not set (run through scripts/test)"))
struct MigrationRunnerTests {
    @Test("up → down → up on an empty database, with status at each step")
    func upDownUp() throws {
        let migrations = try Migration.load(directory: repositoryMigrationsDirectory)
        try withFreshDatabase { (url: String) throws in
            let db = PostgresConnection(connectionString: url)
            let runner = MigrationRunner(connection: db, migrations: migrations)
            #expect(try runner.currentVersion() == 0)
            #expect(try runner.status().allSatisfy { $0.state == .pending })
            #expect(try runner.up().map(\.version) == migrations.map(\.version))
            #expect(try runner.currentVersion() == runner.latestVersion)
            #expect(try runner.status().allSatisfy { $0.state == .applied && $0.appliedAt != nil })
            let full = try tables(db)
            #expect(full.isSuperset(of: ["users", "api_keys", "api_key_usage", "audit_log", "tracked_symbols", "backfill_history", "schema_migrations"]))
            #expect(try runner.up().isEmpty) // idempotent

            #expect(try runner.down().count == 1) // one step by default
            #expect(try runner.currentVersion() == migrations.dropLast().last?.version ?? 0)
            try runner.down(to: 0)
            #expect(try runner.currentVersion() == 0)
            #expect(try tables(db) == ["schema_migrations"])

            try runner.up()
            #expect(try tables(db) == full)
        }
    }

    @Test("0008 gives existing keys their rotation chain's lineage and moves its quota counts there, touching no key")
    func lineageBackfill() throws {
        let migrations = try Migration.load(directory: repositoryMigrationsDirectory)
        try withFreshDatabase { (url: String) throws in
            let db = PostgresConnection(connectionString: url)
            let runner = MigrationRunner(connection: db, migrations: migrations)
            try runner.up(to: 7)
            // A chain first → second → third, a deleted first key's orphan, and a key of its own.
            let ids = try db.query("""
                WITH first AS (INSERT INTO api_keys (key_hash, key_prefix, name, scopes) VALUES (sha256('1'), 'p', 'first', '{self}') RETURNING id),
                     second AS (INSERT INTO api_keys (key_hash, key_prefix, name, scopes, rotated_from)
                                SELECT sha256('2'), 'p', 'second', '{self}', id FROM first RETURNING id),
                     third AS (INSERT INTO api_keys (key_hash, key_prefix, name, scopes, rotated_from)
                               SELECT sha256('3'), 'p', 'third', '{self}', id FROM second RETURNING id),
                     alone AS (INSERT INTO api_keys (key_hash, key_prefix, name, scopes) VALUES (sha256('4'), 'p', 'alone', '{self}') RETURNING id)
                SELECT (SELECT id FROM first)::text AS first, (SELECT id FROM second)::text AS second,
                       (SELECT id FROM third)::text AS third, (SELECT id FROM alone)::text AS alone
                """).first
            let first: String = try #require(try ids?.decode("first")), second: String = try #require(try ids?.decode("second"))
            let third: String = try #require(try ids?.decode("third")), alone: String = try #require(try ids?.decode("alone"))
            try db.query("""
                INSERT INTO api_key_quota_usage (key_id, day, requests) VALUES
                    (\(first)::uuid, current_date, 1), (\(second)::uuid, current_date, 2), (\(third)::uuid, current_date, 4),
                    (\(third)::uuid, current_date - 1, 8), (\(alone)::uuid, current_date, 16)
                """)
            let before = try db.query("SELECT id::text AS id, updated_at::text AS at FROM api_keys ORDER BY id").map { try $0.decode("at", as: String.self) }
            try runner.up()
            let lineage = Dictionary(uniqueKeysWithValues: try db.query("SELECT id::text AS id, coalesce(lineage_id, id)::text AS lineage, lineage_id IS NULL AS own FROM api_keys").map {
                (try $0.decode("id", as: String.self), try $0.decode("lineage", as: String.self))
            })
            #expect(lineage == [first: first, second: first, third: first, alone: alone])
            // Only chain members are written (a table-wide rewrite would hold the lock longer).
            let written = try db.query("SELECT count(*) AS n FROM api_keys WHERE lineage_id IS NOT NULL").first
            #expect(try written?.decode("n", as: Int.self) == 2)
            let counts = try db.query("SELECT key_id::text AS key, (current_date - day) AS ago, requests FROM api_key_quota_usage ORDER BY 1, 2").map {
                "\(try $0.decode("key", as: String.self) == first ? "first" : "alone") \(try $0.decode("ago", as: Int.self)) \(try $0.decode("requests", as: Int.self))"
            }
            #expect(counts.sorted() == ["alone 0 16", "first 0 7", "first 1 8"])
            let after = try db.query("SELECT id::text AS id, updated_at::text AS at FROM api_keys ORDER BY id").map { try $0.decode("at", as: String.self) }
            #expect(after == before, "the backfill is no change of the keys' settings")
            // New rows: the trigger sets the lineage, whoever inserts them.
            let next = try db.query("""
                INSERT INTO api_keys (key_hash, key_prefix, name, scopes, rotated_from)
                VALUES (sha256('5'), 'p', 'fourth', '{self}', \(third)::uuid) RETURNING lineage_id::text AS lineage
                """).first
            #expect(try next?.decode("lineage", as: String.self) == first)
            try db.query("DELETE FROM api_keys WHERE id = \(first)::uuid")
            let orphan = try db.query("""
                INSERT INTO api_keys (key_hash, key_prefix, name, scopes) VALUES (sha256('6'), 'p', 'new', '{self}')
                RETURNING (coalesce(lineage_id, id) = id) AS own
                """).first
            #expect(try orphan?.decode("own", as: Bool.self) == true)
        }
    }

    @Test("an applied migration whose file changed is refused, and status says so")
    func editedMigrationRefused() throws {
        let original = try Migration.parse(fileName: "0001_t.sql", text: "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n")
        let edited = try Migration.parse(fileName: "0001_t.sql", text: "-- migrate:up\nCREATE TABLE t (id bigint);\n-- migrate:down\nDROP TABLE t;\n")
        let next = try Migration.parse(fileName: "0002_u.sql", text: "-- migrate:up\nCREATE TABLE u (id int);\n-- migrate:down\nDROP TABLE u;\n")
        try withFreshDatabase { (url: String) throws in
            let db = PostgresConnection(connectionString: url)
            try MigrationRunner(connection: db, migrations: [original]).up()
            let runner = MigrationRunner(connection: db, migrations: [edited, next])
            #expect(throws: MigrationError.self) { () throws -> Void in _ = try runner.up() }
            #expect(try !tables(db).contains("u")) // nothing after the refusal ran
            #expect(try runner.status().first?.state == .modified)
            #expect(throws: MigrationError.self) { () throws -> Void in _ = try runner.down() }
        }
    }

    @Test("a failing migration leaves nothing behind (one transaction each)")
    func failedMigrationRollsBack() throws {
        let good = try Migration.parse(fileName: "0001_t.sql", text: "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n")
        let bad = try Migration.parse(fileName: "0002_bad.sql", text: "-- migrate:up\nCREATE TABLE half (id int);\nSELECT no_such_function();\n-- migrate:down\nDROP TABLE half;\n")
        try withFreshDatabase { (url: String) throws in
            let db = PostgresConnection(connectionString: url)
            let runner = MigrationRunner(connection: db, migrations: [good, bad])
            #expect(throws: MigrationError.self) { () throws -> Void in _ = try runner.up() }
            #expect(try runner.currentVersion() == 1)
            #expect(try !tables(db).contains("half"))
        }
    }

    @Test("two runners at once: both succeed, each migration applied exactly once")
    func concurrentRunners() throws {
        let migrations = try Migration.load(directory: repositoryMigrationsDirectory)
        try withFreshDatabase { (url: String) throws in
            let failures = UnsafeMutablePointer<Int>.allocate(capacity: 2)
            defer { failures.deallocate() }
            failures.initialize(repeating: 0, count: 2)
            let slots = UnsafeMutableBufferPointer(start: failures, count: 2)
            nonisolated(unsafe) let shared = slots
            DispatchQueue.concurrentPerform(iterations: 2) { index in
                let runner = MigrationRunner(connection: PostgresConnection(connectionString: url), migrations: migrations)
                do { try runner.up() } catch { shared[index] = 1 }
            }
            #expect(Array(slots) == [0, 0])
            let db = PostgresConnection(connectionString: url)
            let counts = try db.query("SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version")
            #expect(try counts.map { try $0.decode("version", as: Int.self) } == migrations.map(\.version))
            #expect(try counts.allSatisfy { try $0.decode("n", as: Int.self) == 1 })
        }
    }
}
