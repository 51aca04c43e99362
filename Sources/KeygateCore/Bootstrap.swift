import Keys
import Posix
import Postgres
import Storage

/// `keygate bootstrap`: migrate, make the first admin key (once), seed the core symbols.
public enum Bootstrap {
    public struct Outcome: Sendable {
        public let appliedMigrations: [Int]
        /// The raw key, when one was made (shown once, never stored).
        public let adminKey: String?
        public let adminKeyID: String?
        public let seededSymbols: Int
    }

    public static func run(configuration: Configuration, force: Bool) throws -> Outcome {
        let connection = PostgresConnection(connectionString: try configuration.connectionString(direct: true), statementTimeoutMilliseconds: 0)
        let migrations = try Migration.load(directory: configuration.migrationsDirectory)
        let applied = try MigrationRunner(connection: connection, migrations: migrations).up().map(\.version)

        // Two bootstraps at once (hosts deployed together) must not both find no admin: the
        // count and the create are one transaction under a transaction lock. (A session
        // lock is lost without a word if the connection is replaced between the two.)
        let made = try connection.transaction { db -> (raw: String, id: String)? in
            try db.query("SELECT pg_advisory_xact_lock(\(Self.adminLockKey))")
            let existing = try db.query("SELECT count(*) AS n FROM api_keys WHERE 'admin' = ANY(scopes) AND active AND (expires_at IS NULL OR expires_at > now())")
            let activeAdmins = try existing.first?.decode("n", as: Int.self) ?? 0
            guard force || activeAdmins == 0 else { return nil }
            let hasher = try KeyHasher(pepper: try KeyHasher.pepper(fromFile: configuration.pepperFile))
            let key = try APIKey.generate(prefix: configuration.keyPrefix, environment: .live)
            let record = try KeyStore.create(NewKey(hash: hasher.hash(key), keyPrefix: key.displayPrefix, name: "bootstrap admin",
                                                    environment: "live", userID: nil, scopes: ["admin"]),
                                             by: .operatorOnHost, within: db)
            return (key.rawValue, record.id)
        }
        return Outcome(appliedMigrations: applied, adminKey: made?.raw, adminKeyID: made?.id,
                       seededSymbols: try seedSymbols(directory: configuration.migrationsDirectory + "/seeds", on: connection))
    }

    /// The advisory lock around the first admin key ("keygate bootstrap admin").
    static let adminLockKey: Int64 = 0x6B65_7967_6174_6501

    /// Inserts `seeds/core-symbols.csv` rows that are not there yet, each with its audit
    /// row; returns how many.
    static func seedSymbols(directory: String, on connection: PostgresConnection) throws -> Int {
        let path = directory + "/core-symbols.csv"
        guard Files.exists(path) else { return 0 } // a deployment without the list seeds nothing
        guard let bytes = Files.read(path), let text = String(validating: bytes, as: UTF8.self) else {
            throw CLIValueError("\(path) cannot be read (unreadable, over 1 MiB, or not UTF-8)")
        }
        let symbols = SymbolStore(connection: connection)
        var inserted = 0
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && line.contains(",") {
            let fields = line.split(separator: ",").map { String($0).trimmingSpaces }
            guard fields.count == 2, let assetClass = try? SymbolValidation.assetClass(fields[1]),
                  let symbol = try? SymbolValidation.canonical(fields[0], assetClass: assetClass) else {
                throw CLIValueError("core-symbols.csv: '\(line)' is not a valid symbol,asset_class line")
            }
            if try symbols.seed(symbol, assetClass: assetClass, by: .operatorOnHost) { inserted += 1 }
        }
        return inserted
    }
}

struct CLIValueError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
