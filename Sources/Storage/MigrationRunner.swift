import Postgres

/// Where one migration stands in a database.
public struct MigrationStatus: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable { case applied, pending, modified, unknown }
    public let version: Int
    public let name: String
    public let state: State
    /// RFC 3339, when applied.
    public let appliedAt: String?
}

/// Applies and rolls back migrations, each in its own transaction, recording version and
/// checksum in `schema_migrations`. A transaction-scoped advisory lock makes concurrent
/// runners take turns (and works through a transaction-pooling PgBouncer).
public struct MigrationRunner {
    /// Arbitrary, fixed: "keygate" in ASCII, as the advisory lock key.
    static let lockKey = 0x6B65_7967_6174_65
    public let connection: PostgresConnection
    public let migrations: [Migration]

    public init(connection: PostgresConnection, migrations: [Migration]) {
        self.connection = connection
        self.migrations = migrations
    }

    public var latestVersion: Int { migrations.last?.version ?? 0 }

    /// Applies pending migrations up to `target` (default: all). Returns those applied.
    @discardableResult
    public func up(to target: Int? = nil) throws(MigrationError) -> [Migration] {
        var applied: [Migration] = []
        for migration in migrations where migration.version <= (target ?? Int.max) {
            let didApply = try locked { db, done throws(MigrationError) -> Bool in
                guard done[migration.version] == nil else { return false }
                try run(migration.up, on: db)
                try database { () throws(PostgresError) in try db.query("INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))") }
                return true
            }
            if didApply { applied.append(migration) }
        }
        return applied
    }

    /// Rolls back the newest applied migration, or all above `target`. Returns those undone.
    @discardableResult
    public func down(to target: Int? = nil) throws(MigrationError) -> [Migration] {
        var undone: [Migration] = []
        while true {
            let step = try locked { db, done throws(MigrationError) -> Migration? in
                guard let newest = done.keys.max(), newest > (target ?? -1) else { return nil }
                guard let migration = migrations.first(where: { $0.version == newest }) else {
                    throw .unknownAppliedVersion(newest)
                }
                try run(migration.down, on: db)
                try database { () throws(PostgresError) in try db.query("DELETE FROM schema_migrations WHERE version = \(newest)") }
                return migration
            }
            guard let step else { break }
            undone.append(step)
            if target == nil { break }
        }
        return undone
    }

    /// Every known and applied migration with its state.
    public func status() throws(MigrationError) -> [MigrationStatus] {
        let applied = try appliedRows()
        var result = migrations.map { migration -> MigrationStatus in
            guard let row = applied[migration.version] else {
                return MigrationStatus(version: migration.version, name: migration.name, state: .pending, appliedAt: nil)
            }
            return MigrationStatus(version: migration.version, name: migration.name,
                                   state: row.checksum == migration.checksum ? .applied : .modified, appliedAt: row.appliedAt)
        }
        for (version, row) in applied where !migrations.contains(where: { $0.version == version }) {
            result.append(MigrationStatus(version: version, name: row.name, state: .unknown, appliedAt: row.appliedAt))
        }
        return result.sorted { $0.version < $1.version }
    }

    /// The highest applied version (0 when none), without creating anything.
    public func currentVersion() throws(PostgresError) -> Int {
        guard try tableExists() else { return 0 }
        let rows = try connection.query("SELECT coalesce(max(version), 0) AS version FROM schema_migrations")
        return (try? rows.first?.decode("version", as: Int.self)) ?? 0
    }

    // MARK: Internals

    private func tableExists() throws(PostgresError) -> Bool {
        let rows = try connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
        return (try? rows.first?.decode("present", as: Bool.self)) == true
    }

    private struct AppliedRow {
        let name: String
        let checksum: String
        let appliedAt: String
    }

    private func appliedRows() throws(MigrationError) -> [Int: AppliedRow] {
        guard try database({ () throws(PostgresError) in try tableExists() }) else { return [:] }
        let rows = try database { () throws(PostgresError) in
            try connection.query("""
                SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS applied_at
                FROM schema_migrations
                """)
        }
        var result: [Int: AppliedRow] = [:]
        for row in rows {
            guard let version = try? row.decode("version", as: Int.self),
                  let name = try? row.decode("name", as: String.self),
                  let checksum = try? row.decode("checksum", as: String.self),
                  let at = try? row.decode("applied_at", as: String.self) else { continue }
            result[version] = AppliedRow(name: name, checksum: checksum, appliedAt: at)
        }
        return result
    }

    /// One transaction holding the advisory lock, with `schema_migrations` present and
    /// every applied migration's checksum verified against its file.
    private func locked<T>(_ body: (PostgresConnection, [Int: String]) throws(MigrationError) -> T) throws(MigrationError) -> T {
        do {
            return try connection.transaction { db in
                try db.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))")
                // "already exists, skipping" notices are noise on every run.
                try db.query("SET LOCAL client_min_messages = warning")
                try db.query("""
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        version integer PRIMARY KEY,
                        name text NOT NULL,
                        checksum text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now()
                    )
                    """)
                var done: [Int: String] = [:]
                for row in try db.query("SELECT version, checksum FROM schema_migrations") {
                    done[try row.decode("version", as: Int.self)] = try row.decode("checksum", as: String.self)
                }
                for (version, checksum) in done {
                    guard let migration = migrations.first(where: { $0.version == version }) else { continue }
                    if migration.checksum != checksum { throw MigrationError.checksumMismatch(version: version, name: migration.name) }
                }
                return try body(db, done)
            }
        } catch let error as MigrationError {
            throw error
        } catch let error as PostgresError {
            throw .database(error)
        } catch {
            throw .database(PostgresError(kind: .other, sqlState: nil, message: String(describing: error)))
        }
    }

    private func run(_ sql: String, on db: PostgresConnection) throws(MigrationError) {
        try database { () throws(PostgresError) in try db.execute(script: sql) }
    }

    @discardableResult
    private func database<T>(_ body: () throws(PostgresError) -> T) throws(MigrationError) -> T {
        do { return try body() } catch { throw .database(error) }
    }
}
