#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Postgres

/// The database scripts/test prepares, reached through PgBouncer (transaction pooling),
/// as keygate's workers reach theirs; and the same database straight, for LISTEN.
private let testDatabaseURL: String? = getenv("KG_TEST_DATABASE_URL").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
private let directDatabaseURL: String? = getenv("KG_TEST_DIRECT_DATABASE_URL").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
private let isCI = getenv("CI").map { String(cString: $0) } == "true"

private struct NoDatabase: Error {}

/// Without a database the suite is skipped visibly when run by hand; under CI=true it
/// runs, and every test fails here.
private func databaseURL() throws -> String {
    guard let url = testDatabaseURL else {
        Issue.record("KG_TEST_DATABASE_URL is not set under CI: PostgreSQL is required")
        throw NoDatabase()
    }
    return url
}

/// The same database straight to PostgreSQL (LISTEN, prepared statements, startup options).
private func directURL() throws -> String {
    _ = try databaseURL()
    guard let direct = directDatabaseURL else {
        Issue.record("KG_TEST_DIRECT_DATABASE_URL is not set")
        throw NoDatabase()
    }
    return direct
}

private func withConnection(_ body: (PostgresConnection) throws -> Void) throws {
    try body(PostgresConnection(connectionString: try databaseURL()))
}

/// A table of the test's own, created and dropped in autocommit statements: temporary
/// tables are session state, which transaction pooling does not keep.
private func withTable(_ columns: String, _ body: (PostgresConnection, String) throws -> Void) throws {
    try withConnection { db in
        let table = "t_\(UInt32.random(in: 0...UInt32.max))"
        try db.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (\(columns))"))
        defer { _ = try? db.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(table)")) }
        try body(db, table)
    }
}

@Suite("PostgresConnection against a real server", .serialized,
       .enabled(if: testDatabaseURL != nil || isCI, "KG_TEST_DATABASE_URL is not set (run through scripts/test)"))
struct PostgresConnectionTests {
    @Test("hostile strings are bound as values, never executed")
    func hostileStrings() throws {
        try withTable("value text") { db, hostile in
            let inputs = ["'; DROP TABLE hostile; --", "\" OR 1=1 --", "a;b", "$1", "\\x00", "Robert'); DROP TABLE students;--", "żółw 🐢"]
            for input in inputs {
                try db.query("INSERT INTO \(unsafeSQL: hostile) (value) VALUES (\(input))")
            }
            let rows = try db.query("SELECT value FROM \(unsafeSQL: hostile) ORDER BY value")
            #expect(Set(try rows.map { try $0.decode("value", as: String.self) }) == Set(inputs))
            let match = try db.query("SELECT count(*) AS n FROM \(unsafeSQL: hostile) WHERE value = \("' OR '1'='1")")
            #expect(try match.first?.decode("n", as: Int.self) == 0)
        }
    }

    @Test("a NUL byte is a clear invalid-input error, never a truncated value")
    func nulByte() throws {
        try withConnection { db in
            #expect(throws: PostgresError.self) { try db.query("SELECT \("abc\u{0}def")::text AS v") }
            do {
                try db.query("SELECT \("abc\u{0}def")::text AS v")
            } catch let error as PostgresError {
                #expect(error.kind == .invalidInput)
            }
        }
    }

    @Test("invalid UTF-8 sent as text is refused by the server as invalid input")
    func invalidUTF8() throws {
        try withConnection { db in
            do {
                try db.query("SELECT \(PostgresRawText([0x61, 0xff, 0xfe]))::text AS v")
                Issue.record("invalid UTF-8 was accepted")
            } catch let error as PostgresError {
                #expect(error.kind == .invalidInput)
                #expect(error.sqlState == "22021")
            }
            #expect(db.isConnected) // the connection survives a refused statement
            #expect(try db.query("SELECT 1 AS one").first?.decode("one", as: Int.self) == 1)
        }
    }

    @Test("every supported type and NULL decode")
    func decoding() throws {
        try withConnection { db in
            let row = try #require(try db.query("""
                SELECT 'txt'::text AS t, 42::int4 AS i4, 9007199254740993::int8 AS i8, true AS b, false AS f,
                       1.5::float8 AS d, '\\x00ff10'::bytea AS raw, ARRAY['a','b c','d"e','']::text[] AS arr,
                       '{}'::text[] AS empty, '{"k": [1, 2]}'::jsonb AS j, '10.1.2.3/32'::inet AS ip,
                       '10.0.0.0/8'::cidr AS net, '2f1c9a7e-0000-4000-8000-000000000001'::uuid AS id,
                       '2026-11-21 05:12:19.123456+00'::timestamptz AS ts, '2026-11-21 07:12:19+02:00'::timestamptz AS ts2,
                       NULL::text AS nothing
                """).first)
            #expect(try row.decode("t", as: String.self) == "txt")
            #expect(try row.decode("i4", as: Int.self) == 42)
            #expect(try row.decode("i8", as: Int64.self) == 9_007_199_254_740_993)
            #expect(try row.decode("b", as: Bool.self) == true)
            #expect(try row.decode("f", as: Bool.self) == false)
            #expect(try row.decode("d", as: Double.self) == 1.5)
            #expect(try row.decode("raw", as: PostgresBytes.self) == PostgresBytes([0x00, 0xff, 0x10]))
            #expect(try row.decode("arr", as: [String].self) == ["a", "b c", "d\"e", ""])
            #expect(try row.decode("empty", as: [String].self) == [])
            #expect(try row.decode("j", as: String.self) == #"{"k": [1, 2]}"#)
            #expect(try row.decode("ip", as: String.self) == "10.1.2.3")
            #expect(try row.decode("net", as: String.self) == "10.0.0.0/8")
            #expect(try row.decode("id", as: String.self) == "2f1c9a7e-0000-4000-8000-000000000001")
            let ts = try row.decode("ts", as: PostgresTimestamp.self)
            #expect(ts.microseconds == 1_795_237_939_123_456)
            #expect(try row.decode("ts2", as: PostgresTimestamp.self).microseconds == 1_795_237_939_000_000)
            #expect(try row.decode("nothing", as: String?.self) == nil)
            #expect(throws: PostgresDecodingError.unexpectedNull("nothing")) { try row.decode("nothing", as: String.self) }
            #expect(throws: PostgresDecodingError.missingColumn("nope")) { try row.decode("nope", as: String.self) }
            #expect(throws: PostgresDecodingError.invalidValue(column: "t", type: "Int")) { try row.decode("t", as: Int.self) }
        }
    }

    @Test("bound values round-trip: arrays, bytea, timestamps, NULL")
    func binding() throws {
        try withConnection { db in
            let scopes = ["keys:read", "quote\"d", "back\\slash", "comma,here"]
            let when = PostgresTimestamp(microseconds: 1_795_237_939_123_456)
            let nothing: String? = nil
            let row = try #require(try db.query("""
                SELECT \(scopes)::text[] AS arr, \(PostgresBytes([1, 2, 255]))::bytea AS raw,
                       \(when)::timestamptz AS ts, \(nothing)::text AS n, \(7)::int + 1 AS eight
                """).first)
            #expect(try row.decode("arr", as: [String].self) == scopes)
            #expect(try row.decode("raw", as: PostgresBytes.self) == PostgresBytes([1, 2, 255]))
            #expect(try row.decode("ts", as: PostgresTimestamp.self) == when)
            #expect(try row.isNull("n"))
            #expect(try row.decode("eight", as: Int.self) == 8)
        }
    }

    @Test("bytea decodes in the escape output format as in hex, every byte value")
    func byteaEscapeFormat() throws {
        try withConnection { db in
            let every = PostgresBytes((0...255).map { UInt8($0) } + [92, 92, 120, 0])
            for format in ["hex", "escape"] {
                try db.query(PostgresQuery(unsafeSQL: "SET bytea_output = \(format)"))
                let row = try #require(try db.query("SELECT \(every)::bytea AS b, ''::bytea AS empty").first)
                #expect(try row.decode("b", as: PostgresBytes.self) == every, "\(format)")
                #expect(try row.decode("empty", as: PostgresBytes.self) == PostgresBytes([]), "\(format)")
            }
            try db.query("RESET bytea_output")
        }
        #expect(PostgresBytes(postgresText: Array(#"a\\b\101"#.utf8)[...]) == PostgresBytes(Array("a\\bA".utf8)))
        for broken in [#"\"#, #"\4"#, #"\400"#, #"\8aa"#, #"\x0"#, #"\xzz"#] {
            #expect(PostgresBytes(postgresText: Array(broken.utf8)[...]) == nil, "\(broken)")
        }
    }

    @Test("SQLSTATEs map to meanings")
    func sqlStates() throws {
        try withTable("id int PRIMARY KEY, n int CHECK (n > 0)") { db, uniq in
            try db.query("INSERT INTO \(unsafeSQL: uniq) VALUES (1, 1)")
            func kind(_ query: PostgresQuery) -> PostgresError.Kind? {
                do { try db.query(query); return nil } catch { return error.kind }
            }
            #expect(kind("INSERT INTO \(unsafeSQL: uniq) VALUES (1, 1)") == .uniqueViolation)
            #expect(kind("INSERT INTO \(unsafeSQL: uniq) VALUES (2, -1)") == .constraintViolation)
            #expect(kind("INSERT INTO \(unsafeSQL: uniq) VALUES (NULL, 1)") == .constraintViolation)
            #expect(kind("SELECT 1/0") == .invalidInput)
            #expect(kind("SELECT \("not a number")::int") == .invalidInput)
            #expect(kind("SELECT * FROM no_such_table") == .other)
            // A demoted primary after a failover refuses writes: the database is not there
            // for writing, which is not a bug to answer with 500.
            try db.query("SET default_transaction_read_only = on")
            #expect(kind("INSERT INTO \(unsafeSQL: uniq) VALUES (3, 1)") == .unavailable)
            try db.query("SET default_transaction_read_only = off")
        }
        #expect(PostgresError.kind(for: "25006") == .unavailable)
        #expect(PostgresError.kind(for: "53100") == .unavailable)
        #expect(PostgresError.kind(for: "53200") == .unavailable)
        #expect(PostgresError.kind(for: "55P03") == .timeout)
        #expect(PostgresError.kind(for: "40001") == .retryable)
        #expect(PostgresError.kind(for: "40P01") == .retryable)
        #expect(PostgresError.kind(for: "57014") == .timeout)
        #expect(PostgresError.kind(for: "08006") == .unavailable)
        #expect(PostgresError.kind(for: "23503") == .foreignKeyViolation)
        #expect(PostgresError.kind(for: nil) == .unavailable)
    }

    @Test("a statement past the transaction's statement timeout is a timeout")
    func statementTimeout() throws {
        let url = try databaseURL()
        let db = PostgresConnection(connectionString: url, statementTimeoutMilliseconds: 100)
        do {
            try db.transaction { db in try db.query("SELECT pg_sleep(2)") }
            Issue.record("pg_sleep(2) outlived a 100 ms statement timeout")
        } catch let error as PostgresError {
            #expect(error.kind == .timeout)
        }
        #expect(try db.query("SELECT 1 AS one").first?.decode("one", as: Int.self) == 1)
    }

    @Test("a statement timeout of 0 turns off the session's (or role's) own default")
    func statementTimeoutZero() throws {
        let db = PostgresConnection(connectionString: try databaseURL(), statementTimeoutMilliseconds: 0)
        try db.query("SET statement_timeout = 100") // as a role default would
        try db.transaction { db in try db.query("SELECT pg_sleep(0.3)") }
        #expect(throws: PostgresError.self) { try db.query("SELECT pg_sleep(0.3)") } // outside: the default holds
    }

    @Test("a connection lost in a transaction fails it: nothing runs in autocommit on a new one")
    func connectionLostInTransaction() throws {
        try withTable("n int") { db, tx in
            do {
                try db.transaction { db in
                    try db.query("INSERT INTO \(unsafeSQL: tx) VALUES (1)")
                    _ = try? db.query("SELECT pg_terminate_backend(pg_backend_pid())")
                    try db.query("INSERT INTO \(unsafeSQL: tx) VALUES (2)")
                }
                Issue.record("the transaction reported success after its connection died")
            } catch let error as PostgresError {
                #expect(error.kind == .unavailable)
            }
            // The next statement reconnects; neither insert is there.
            #expect(try db.query("SELECT count(*) AS n FROM \(unsafeSQL: tx)").first?.decode("n", as: Int.self) == 0)
        }
    }

    @Test("a script of comments only is no error (an empty migration part)")
    func emptyScript() throws {
        let db = PostgresConnection(connectionString: try databaseURL())
        try db.execute(script: "-- nothing to undo\n")
        try db.transaction { db in try db.execute(script: "  ") }
    }

    @Test("transactions commit on return and roll back on throw")
    func transactions() throws {
        try withTable("n int") { db, tx in
            struct Abort: Error {}
            _ = try? db.transaction { db in
                try db.query("INSERT INTO \(unsafeSQL: tx) VALUES (1)")
                throw Abort()
            }
            try db.transaction { db in try db.query("INSERT INTO \(unsafeSQL: tx) VALUES (2)") }
            let values = try db.query("SELECT n FROM \(unsafeSQL: tx)").map { try $0.decode("n", as: Int.self) }
            #expect(values == [2])
        }
    }

    @Test("a transaction whose body carried on past a failed statement is reported failed, not committed")
    func swallowedFailure() throws {
        try withTable("n int PRIMARY KEY") { db, tx in
            #expect(throws: PostgresError.self) {
                try db.transaction { db in
                    try db.query("INSERT INTO \(unsafeSQL: tx) VALUES (1)")
                    _ = try? db.query("INSERT INTO \(unsafeSQL: tx) VALUES (1)")  // fails; the body goes on
                }
            }
            #expect(try db.query("SELECT n FROM \(unsafeSQL: tx)").map { try $0.decode("n", as: Int.self) }.isEmpty)
            // The connection is usable again at once.
            try db.transaction { db in try db.query("INSERT INTO \(unsafeSQL: tx) VALUES (2)") }
            #expect(try db.query("SELECT count(*) AS c FROM \(unsafeSQL: tx)").first?.decode("c", as: Int.self) == 1)
        }
    }

    @Test("a transaction inside a transaction is refused, and the outer one still commits as a whole")
    func nested() throws {
        try withTable("n int") { db, tx in
            try db.transaction { db in
                try db.query("INSERT INTO \(unsafeSQL: tx) VALUES (1)")
                #expect(throws: PostgresError.self) {
                    try db.transaction { db in try db.query("INSERT INTO \(unsafeSQL: tx) VALUES (2)") }
                }
                try db.query("INSERT INTO \(unsafeSQL: tx) VALUES (3)")
            }
            let values = try db.query("SELECT n FROM \(unsafeSQL: tx) ORDER BY n").map { try $0.decode("n", as: Int.self) }
            #expect(values == [1, 3])
        }
    }

    @Test("COPY inserts many rows in one round trip, escaping tabs, newlines, backslashes and NULL")
    func copy() throws {
        try withTable("id int, note text") { db, bulk in
            let rows: [[PostgresBindable?]] = (1...500).map { [$0, $0 % 7 == 0 ? nil : "row\t\($0)\nline\\end"] }
            try db.copy(into: bulk, columns: ["id", "note"], rows: rows)
            let summary = try #require(try db.query("SELECT count(*) AS n, count(note) AS notes, max(note) AS sample FROM \(unsafeSQL: bulk)").first)
            #expect(try summary.decode("n", as: Int.self) == 500)
            #expect(try summary.decode("notes", as: Int.self) == 500 - 500 / 7)
            let one = try #require(try db.query("SELECT note FROM \(unsafeSQL: bulk) WHERE id = 1").first)
            #expect(try one.decode("note", as: String.self) == "row\t1\nline\\end")
        }
    }

    @Test("LISTEN (straight to PostgreSQL) receives a NOTIFY sent through PgBouncer")
    func listenNotify() throws {
        let url = try databaseURL()
        let direct = try directURL()
        let listener = PostgresConnection(connectionString: direct)
        let sender = PostgresConnection(connectionString: url)
        try listener.listen("keygate_test")
        try sender.query("SELECT pg_notify('keygate_test', \("key-123"))")
        var received: [(channel: String, payload: String)] = []
        for _ in 0..<20 where received.isEmpty {
            received = try listener.notifications(timeoutMilliseconds: 100)
        }
        #expect(received.map(\.channel) == ["keygate_test"])
        #expect(received.map(\.payload) == ["key-123"])
    }

    @Test("a prepared statement (straight to PostgreSQL) is prepared once per connection and survives DISCARD ALL and a lost connection")
    func preparedStatements() throws {
        let direct = try directURL()
        let db = PostgresConnection(connectionString: direct, usesPreparedStatements: true)
        let twice = PostgresStatement(name: "keygate_test_double", unsafeSQL: "SELECT $1::int * 2 AS twice")
        func double(_ value: Int) throws -> Int? {
            try db.query(twice, value).first?.decode("twice", as: Int.self)
        }
        #expect(try double(21) == 42)
        #expect(try double(5) == 10)
        let statements = try db.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'keygate_test_double'")
        #expect(try statements.first?.decode("n", as: Int.self) == 1)
        // The server forgets it: prepared again, transparently.
        try db.query("DISCARD ALL")
        #expect(try double(7) == 14)
        // The connection dies under it: a fresh connection, prepared again.
        let pid = try db.query("SELECT pg_backend_pid() AS pid").first?.decode("pid", as: Int.self) ?? 0
        let killer = PostgresConnection(connectionString: direct)
        try killer.query("SELECT pg_terminate_backend(\(pid))")
        usleep(100_000)
        #expect(try double(8) == 16)
        // Errors from the statement itself are errors, not retries.
        do {
            _ = try db.query(PostgresStatement(name: "keygate_test_overflow", unsafeSQL: "SELECT $1::int + 1 AS n"), Int(Int32.max))
            Issue.record("integer overflow was not reported")
        } catch {
            #expect(error.sqlState == "22003")
        }
    }

    @Test("a prepared statement whose table changed type under it is prepared anew, not refused until the worker is replaced")
    func preparedAfterTypeChange() throws {
        let direct = try directURL()
        let db = PostgresConnection(connectionString: direct, usesPreparedStatements: true)
        let table = "keygate_test_retyped_\(UInt32.random(in: 0...UInt32.max))"
        try db.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (n int)"))
        defer { _ = try? db.query(PostgresQuery(unsafeSQL: "DROP TABLE \(table)")) }
        try db.query(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES (7)"))
        let all = PostgresStatement(name: "keygate_test_retyped", unsafeSQL: "SELECT * FROM \(table) WHERE n = $1")
        #expect(try db.query(all, 7).first?.decode("n", as: Int.self) == 7)
        // A migration changes the column's type (the server answers 0A000, "cached plan must
        // not change result type", for the statement as prepared).
        try db.query(PostgresQuery(unsafeSQL: "ALTER TABLE \(table) ALTER COLUMN n TYPE bigint"))
        #expect(try db.query(all, 7).first?.decode("n", as: Int.self) == 7)
        #expect(try db.query(all, 7).first?.decode("n", as: Int.self) == 7)
    }

    @Test("a PostgresStatement binds its placeholders per call; it is prepared once per connection only where allowed")
    func statements() throws {
        let direct = try directURL()
        let statement = PostgresStatement(name: "keygate_test_sum", unsafeSQL: "SELECT $1::int + $2::int AS sum, $3::text AS label")
        for db in [PostgresConnection(connectionString: direct, usesPreparedStatements: true),
                   PostgresConnection(connectionString: try databaseURL())] {
            for (a, b) in [(1, 2), (40, 2)] {
                let row = try #require(try db.query(statement, a, b, "it's").first)
                #expect(try row.decode("sum", as: Int.self) == a + b)
                #expect(try row.decode("label", as: String.self) == "it's")
            }
            let kept = try db.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'keygate_test_sum'")
            #expect(try kept.first?.decode("n", as: Int.self) == (db.usesPreparedStatements ? 1 : 0))
        }
    }

    @Test("timestamps far in the future round-trip through the server")
    func wideYears() throws {
        try withConnection { db in
            for text in ["10000-01-01 00:30:00+00", "9999-12-31 23:59:59.999999+00", "100000-01-01 00:00:00+00"] {
                let row = try #require(try db.query("SELECT \(text)::timestamptz AS ts").first)
                let parsed = try row.decode("ts", as: PostgresTimestamp.self)
                let back = try #require(try db.query("SELECT \(parsed)::timestamptz = \(text)::timestamptz AS same").first)
                #expect(try back.decode("same", as: Bool.self), "\(text)")
            }
        }
    }

    @Test("a server set to another DateStyle still gives timestamps the connection can read")
    func dateStyle() throws {
        let direct = try directURL()
        for style in ["German", "SQL,DMY", "Postgres,MDY"] {
            let db = PostgresConnection(connectionString: direct + " options='-c DateStyle=\(style)'")
            let row = try #require(try db.query("SELECT '2026-11-21 05:12:19.123456+00'::timestamptz AS ts, current_setting('DateStyle') AS style").first)
            #expect(try row.decode("ts", as: PostgresTimestamp.self).microseconds == 1_795_237_939_123_456, "\(style)")
            #expect(try row.decode("style", as: String.self).hasPrefix("ISO"), "\(style)")
        }
    }

    @Test("an unreachable server is 'unavailable', and the next call reconnects")
    func unreachable() throws {
        let db = PostgresConnection(connectionString: "host=127.0.0.1 port=1 dbname=x connect_timeout=1")
        do {
            try db.query("SELECT 1")
            Issue.record("connected to port 1")
        } catch {
            #expect(error.kind == .unavailable)
        }
        #expect(!db.isConnected)
    }
}

@Suite("Text values decode exactly, or not at all")
struct PostgresTextDecodingTests {
    private func text(_ string: String) -> ArraySlice<UInt8> { Array(string.utf8)[...] }

    @Test("integers: signs, limits, overflow and junk")
    func integers() {
        #expect(Int64(postgresText: text("9223372036854775807")) == Int64.max)
        #expect(Int64(postgresText: text("-9223372036854775808")) == Int64.min)
        #expect(Int64(postgresText: text("9223372036854775808")) == nil)
        #expect(Int64(postgresText: text("-9223372036854775809")) == nil)
        #expect(Int(postgresText: text("-0")) == 0)
        #expect(Int(postgresText: text("007")) == 7)
        for junk in ["", "-", "+1", "1.0", " 1", "1 ", "1e3", "0x10", "١"] {
            #expect(Int(postgresText: text(junk)) == nil, "\(junk)")
        }
        // A slice that does not start at index 0 (cells are slices of one result buffer).
        let buffer = Array("xx-42yy".utf8)
        #expect(Int(postgresText: buffer[2..<5]) == -42)
    }

    @Test("timestamps: offsets with minutes and seconds; other styles and BC refused")
    func timestamps() {
        let base: Int64 = 1_795_237_939_123_456 // 2026-11-21 05:12:19.123456 UTC
        #expect(PostgresTimestamp(postgresText: text("2026-11-21 05:12:19.123456+00"))?.microseconds == base)
        #expect(PostgresTimestamp(postgresText: text("2026-11-21 10:42:19.123456+05:30"))?.microseconds == base)
        #expect(PostgresTimestamp(postgresText: text("2026-11-21 04:59:10.123456-00:13:09"))?.microseconds == base)
        #expect(PostgresTimestamp(postgresText: text("2026-11-21 05:12:19+00"))?.microseconds == base - 123_456)
        #expect(PostgresTimestamp(postgresText: text("1969-12-31 23:59:59.5+00"))?.microseconds == -500_000)
        for other in ["21.11.2026 05:12:19.123456 UTC", "11/21/2026 05:12:19.123456 UTC", "Sat Nov 21 05:12:19.123456 2026 UTC",
                      "0001-01-01 00:00:00+00 BC", "2026-11-21 05:12:19.123456+00 ", "2026-11-21T05:12:19.123456+00", "infinity"] {
            #expect(PostgresTimestamp(postgresText: text(other)) == nil, "\(other)")
        }
        // Years past 9999 (an expiry of 9999-12-31T23:30:00-01:00 is stored in year 10000).
        #expect(PostgresTimestamp(postgresText: text("10000-01-01 00:30:00+00"))?.microseconds == 253_402_302_600_000_000)
        #expect(PostgresTimestamp(postgresText: text("100000-01-01 00:00:00+00"))?.microseconds == 3_093_527_980_800_000_000)
        // PostgreSQL's last year does not fit Int64 µs since 1970: refused, not a trap.
        for year in ["294276-12-31 23:59:59.999999+00", "999-01-01 00:00:00+00", "1234567-01-01 00:00:00+00", "-2026-11-21 05:12:19+00"] {
            #expect(PostgresTimestamp(postgresText: text(year)) == nil, "\(year)")
        }
        let buffer = Array("|2026-11-21 05:12:19.123456+00|".utf8)
        #expect(PostgresTimestamp(postgresText: buffer[1..<buffer.count - 1])?.microseconds == base)
    }

    @Test("arrays from a slice of a larger buffer")
    func arrays() {
        let buffer = Array(#"x{a,"b,c",10.0.0.0/8}y"#.utf8)
        #expect([String](postgresText: buffer[1..<buffer.count - 1]) == ["a", "b,c", "10.0.0.0/8"])
        #expect([String](postgresText: text("{a,NULL}")) == nil)
        #expect([String](postgresText: text(#"{"NULL"}"#)) == ["NULL"])
        #expect(Bool(postgresText: buffer[0..<1]) == nil)
        #expect(Bool(postgresText: text("t")) == true)
    }
}
