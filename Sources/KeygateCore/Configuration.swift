import FastCGI
import Posix
import Prefork

/// Every keygate setting, with its default. Read from a `key = value` file (see
/// `keygate.conf.example` and docs/configuration.md), then overridden by environment
/// variables named `KEYGATE_<KEY>` (upper case). Secrets are never values here: only
/// paths to files that hold them.
public struct Configuration: Sendable, Equatable {
    public var listen: ListenAddress = .unix(path: "/run/keygate/keygate.sock")
    public var listenMode: UInt32 = 0o660
    public var listenBacklog: Int = 511
    /// Holds the pid file and the shared-memory segments.
    public var runtimeDirectory = "/run/keygate"
    /// 0 means 2 × online CPUs.
    public var workers = 0
    public var maxRequests = 10_000
    /// Workers and the housekeeper run under SCHED_BATCH (`batch`) or the default policy
    /// (`normal`). Batch: a worker woken by a request does not preempt nginx (the pool's
    /// only way in) on that CPU; see docs/benchmarks.md.
    public var workerScheduling = WorkerScheduling.batch
    public var requestTimeoutSeconds = 30.0
    public var shutdownTimeoutSeconds = 30.0
    public var emergencyRestartThreshold = 10
    public var emergencyRestartIntervalSeconds = 60.0
    public var maxBodyBytes = 1 << 20
    public var logLevel: LogLevel = .info
    /// Enables `/debug/sleep` for the test suite; never on in production.
    public var debugRoutes = false
    /// libpq connection string the workers use (normally PgBouncer, transaction pooling).
    public var databaseURL = "host=/run/postgresql dbname=keygate user=keygate"
    /// Straight to PostgreSQL, for migrations and LISTEN (session state); empty = databaseURL.
    public var databaseDirectURL = ""
    /// The workers keep named prepared statements on the server (the key lookup). Only
    /// for a database_url straight to PostgreSQL, or a pooler that keeps prepared
    /// statements (PgBouncer 1.21+ with max_prepared_statements); not PgBouncer 1.18 in
    /// transaction mode, which hands each transaction to any server connection.
    public var databasePreparedStatements = false
    /// File holding the database password (never the password itself); empty = none.
    public var databasePasswordFile = ""
    /// Server-side statement timeout in every transaction keygate opens, milliseconds.
    public var statementTimeoutMilliseconds = 5_000
    /// Where the numbered SQL migrations live.
    public var migrationsDirectory = "/usr/share/keygate/migrations"
    /// First part of every key (`mdw_live_…`).
    public var keyPrefix = "mdw"
    /// File holding the HMAC pepper (≥ 32 bytes). Keys are stored as HMAC-SHA-256(pepper, key).
    public var pepperFile = "/etc/keygate/pepper"
    /// Accept keys in the `api_key` query parameter (URLs end up in logs: off by default).
    public var allowQueryKey = false
    /// The OpenAPI document served at `/api/v1/openapi.json` (docs/openapi.json in the repo).
    public var openAPIFile = "/usr/share/keygate/openapi.json"
    /// A completed or failed symbol is due for backfill again after this many seconds.
    public var backfillIntervalSeconds = 86_400
    /// A claimed (in_progress) symbol is claimable again after this many seconds.
    public var backfillLeaseSeconds = 3_600
    /// Entries of the shared-memory validated-key cache; 0 turns the cache off (every
    /// request looks its key up in the database).
    public var keyCacheEntries = 32_768
    /// Seconds a cached key stays valid without a fresh database read (the safety net
    /// behind explicit invalidation).
    public var keyCacheTTLSeconds = 60
    /// Seconds an unknown key is remembered as unknown; 0 = never.
    public var keyCacheNegativeTTLSeconds = 5
    /// While the database is unreachable, keep accepting cached keys (until their TTL).
    public var keyCacheDuringOutage = true
    /// Keys whose rate-limit and quota state fits in shared memory at once.
    public var rateLimitEntries = 32_768
    /// Records the usage ring holds before new ones are dropped (and counted).
    public var usageRingEntries = 32_768
    /// Usage partitions wholly older than this many days are dropped; 0 = keep all.
    public var usageRetentionDays = 0

    public init() {}

    /// Worker count with `0` resolved to 2 × CPUs.
    public var effectiveWorkers: Int {
        workers > 0 ? workers : 2 * ProcessControl.onlineCPUCount
    }

    public var poolSettings: PoolSettings {
        PoolSettings(workers: effectiveWorkers, maxRequests: maxRequests,
                     requestTimeoutSeconds: requestTimeoutSeconds, shutdownTimeoutSeconds: shutdownTimeoutSeconds,
                     emergencyRestartThreshold: emergencyRestartThreshold,
                     emergencyRestartIntervalSeconds: emergencyRestartIntervalSeconds,
                     // Longer than any statement may run (the housekeeper beats between them).
                     housekeeperStallSeconds: statementTimeoutMilliseconds == 0 ? 600
                         : max(60, 2 * Double(statementTimeoutMilliseconds) / 1_000 + 10))
    }

    public var pidFilePath: String { runtimeDirectory + "/keygate.pid" }
    public var scoreboardPath: String { runtimeDirectory + "/keygate.scoreboard" }
    public var keyCachePath: String { runtimeDirectory + "/keygate.keycache" }
    public var rateTablePath: String { runtimeDirectory + "/keygate.ratelimits" }
    public var usageRingPath: String { runtimeDirectory + "/keygate.usage" }

    /// The settings as `key = value` lines, in the file's own format.
    public var rendered: [(key: String, value: String)] {
        [
            ("listen", listen.description),
            ("listen_mode", "0" + String(listenMode, radix: 8)),
            ("listen_backlog", String(listenBacklog)),
            ("runtime_dir", runtimeDirectory),
            ("workers", workers == 0 ? "0 (auto: \(effectiveWorkers))" : String(workers)),
            ("max_requests", String(maxRequests)),
            ("worker_scheduling", workerScheduling.rawValue),
            ("request_timeout", String(requestTimeoutSeconds)),
            ("shutdown_timeout", String(shutdownTimeoutSeconds)),
            ("emergency_restart_threshold", String(emergencyRestartThreshold)),
            ("emergency_restart_interval", String(emergencyRestartIntervalSeconds)),
            ("max_body_bytes", String(maxBodyBytes)),
            ("log_level", logLevel.rawValue),
            ("debug_routes", debugRoutes ? "on" : "off"),
            ("database_url", databaseURL),
            ("database_direct_url", databaseDirectURL),
            ("database_password_file", databasePasswordFile),
            ("database_prepared_statements", databasePreparedStatements ? "on" : "off"),
            ("statement_timeout", String(statementTimeoutMilliseconds)),
            ("migrations_dir", migrationsDirectory),
            ("key_prefix", keyPrefix),
            ("pepper_file", pepperFile),
            ("allow_query_key", allowQueryKey ? "on" : "off"),
            ("openapi_file", openAPIFile),
            ("backfill_interval", String(backfillIntervalSeconds)),
            ("backfill_lease", String(backfillLeaseSeconds)),
            ("key_cache_entries", String(keyCacheEntries)),
            ("key_cache_ttl", String(keyCacheTTLSeconds)),
            ("key_cache_negative_ttl", String(keyCacheNegativeTTLSeconds)),
            ("key_cache_during_outage", keyCacheDuringOutage ? "on" : "off"),
            ("rate_limit_entries", String(rateLimitEntries)),
            ("usage_ring_entries", String(usageRingEntries)),
            ("usage_retention_days", String(usageRetentionDays)),
        ]
    }
}

/// The CPU scheduling policy of the pool's children (`worker_scheduling`).
public enum WorkerScheduling: String, Sendable, Equatable {
    case batch
    case normal

    /// Applies the policy to the calling process. A refusal (a seccomp filter, say) is
    /// logged, not fatal: the pool works under either policy.
    func apply(logger: Logger) {
        guard self == .batch else { return }
        do {
            try ProcessControl.useBatchScheduling()
        } catch {
            logger.warning("cannot switch to SCHED_BATCH; staying on the default policy", [("error", String(describing: error))])
        }
    }
}

/// A setting that could not be used, with where it came from.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let source: String
    public let message: String

    public var description: String { "\(source): \(message)" }
}

extension Configuration {
    /// Loads `path` (nil: defaults only) and applies `environment` overrides.
    public static func load(path: String?, environment: [String: String]) throws(ConfigurationError) -> Configuration {
        var configuration = Configuration()
        if let path {
            guard let bytes = Files.read(path) else {
                throw ConfigurationError(source: path, message: "cannot be read (missing, unreadable, or over 1 MiB)")
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw ConfigurationError(source: path, message: "is not UTF-8 text")
            }
            try configuration.apply(fileText: text, source: path)
        }
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("KEYGATE_") && name != "KEYGATE_CONFIG" {
            let key = String(name.dropFirst("KEYGATE_".count)).lowercased()
            try configuration.set(key, value, source: "environment \(name)")
        }
        try configuration.validate()
        return configuration
    }

    mutating func apply(fileText: String, source: String) throws(ConfigurationError) {
        // Split on bytes, not Characters: "\r\n" is one Character and would hide line breaks.
        for (number, rawLine) in fileText.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: UInt8(ascii: "#"), maxSplits: 1, omittingEmptySubsequences: false).first
                .map { String(decoding: $0, as: UTF8.self) } ?? ""
            let trimmed = line.trimmingSpaces
            if trimmed.isEmpty { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw ConfigurationError(source: "\(source):\(number + 1)", message: "expected 'key = value'")
            }
            let key = String(trimmed[..<equals]).trimmingSpaces
            let value = String(trimmed[trimmed.index(after: equals)...]).trimmingSpaces
            try set(key, value, source: "\(source):\(number + 1)")
        }
    }

    mutating func set(_ key: String, _ value: String, source: String) throws(ConfigurationError) {
        func fail(_ message: String) -> ConfigurationError { ConfigurationError(source: source, message: "\(key): \(message)") }
        func integer(_ range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
            guard let number = Int(value), range.contains(number) else { throw fail("expected an integer in \(range.lowerBound)...\(range.upperBound), got '\(value)'") }
            return number
        }
        func seconds() throws(ConfigurationError) -> Double {
            guard let number = Double(value), number >= 0, number <= 86_400 else { throw fail("expected seconds (0...86400), got '\(value)'") }
            return number
        }
        func flag() throws(ConfigurationError) -> Bool {
            switch value.lowercased() {
            case "on", "true", "yes", "1": return true
            case "off", "false", "no", "0": return false
            default: throw fail("expected on or off, got '\(value)'")
            }
        }
        switch key {
        case "listen":
            guard let address = ListenAddress(value) else { throw fail("expected a unix socket path or host:port, got '\(value)'") }
            listen = address
        case "listen_mode":
            guard let mode = UInt32(value, radix: 8), mode <= 0o777 else { throw fail("expected an octal mode such as 0660, got '\(value)'") }
            listenMode = mode
        case "listen_backlog": listenBacklog = try integer(1...65_535)
        case "runtime_dir":
            guard value.hasPrefix("/") else { throw fail("expected an absolute path, got '\(value)'") }
            runtimeDirectory = value
        case "workers": workers = try integer(0...256)
        case "max_requests": maxRequests = try integer(0...Int(Int32.max))
        case "worker_scheduling":
            guard let policy = WorkerScheduling(rawValue: value.lowercased()) else { throw fail("expected batch or normal, got '\(value)'") }
            workerScheduling = policy
        case "request_timeout": requestTimeoutSeconds = try seconds()
        case "shutdown_timeout": shutdownTimeoutSeconds = try seconds()
        case "emergency_restart_threshold": emergencyRestartThreshold = try integer(0...10_000)
        case "emergency_restart_interval": emergencyRestartIntervalSeconds = try seconds()
        case "max_body_bytes": maxBodyBytes = try integer(1_024...(64 << 20))
        case "log_level":
            guard let level = LogLevel(rawValue: value.lowercased()) else { throw fail("expected debug, info, warning or error, got '\(value)'") }
            logLevel = level
        case "debug_routes": debugRoutes = try flag()
        case "database_url":
            guard !value.isEmpty else { throw fail("must not be empty") }
            guard !value.contains("password") else { throw fail("put the password in database_password_file, not in the URL") }
            databaseURL = value
        case "database_direct_url":
            guard !value.contains("password") else { throw fail("put the password in database_password_file, not in the URL") }
            databaseDirectURL = value
        case "database_password_file":
            guard value.isEmpty || value.hasPrefix("/") else { throw fail("expected an absolute path, got '\(value)'") }
            databasePasswordFile = value
        case "database_prepared_statements": databasePreparedStatements = try flag()
        case "statement_timeout": statementTimeoutMilliseconds = try integer(0...3_600_000)
        case "key_prefix":
            guard (2...16).contains(value.utf8.count), value.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) }) else {
                throw fail("expected 2-16 lower-case letters or digits, got '\(value)'")
            }
            keyPrefix = value
        case "pepper_file":
            guard value.hasPrefix("/") else { throw fail("expected an absolute path, got '\(value)'") }
            pepperFile = value
        case "allow_query_key": allowQueryKey = try flag()
        case "openapi_file":
            guard value.hasPrefix("/") else { throw fail("expected an absolute path, got '\(value)'") }
            openAPIFile = value
        case "backfill_interval": backfillIntervalSeconds = try integer(1...31_536_000)
        case "backfill_lease": backfillLeaseSeconds = try integer(1...604_800)
        case "key_cache_entries": keyCacheEntries = try integer(0...4_194_304)
        case "key_cache_ttl": keyCacheTTLSeconds = try integer(1...3_600)
        case "key_cache_negative_ttl": keyCacheNegativeTTLSeconds = try integer(0...60)
        case "key_cache_during_outage": keyCacheDuringOutage = try flag()
        case "rate_limit_entries": rateLimitEntries = try integer(64...4_194_304)
        case "usage_ring_entries": usageRingEntries = try integer(64...4_194_304)
        case "usage_retention_days": usageRetentionDays = try integer(0...36_500)
        case "migrations_dir":
            guard !value.isEmpty else { throw fail("must not be empty") }
            migrationsDirectory = value
        default:
            throw fail("unknown setting")
        }
    }

    func validate() throws(ConfigurationError) {
        if effectiveWorkers < 1 { throw ConfigurationError(source: "workers", message: "at least one worker is needed") }
    }
}

extension String {
    var trimmingSpaces: String {
        let bytes = Array(utf8)
        var start = 0, end = bytes.count
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 || bytes[start] == 0x0d || bytes[start] == 0x0a { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 || bytes[end - 1] == 0x0d || bytes[end - 1] == 0x0a { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}

extension Configuration {
    /// The connection string for the workers (`direct: false`) or for migrations and
    /// LISTEN (`direct: true`), with the password read from `database_password_file`.
    /// Reads what workers and the housekeeper derive from these settings when they start
    /// (the connection strings, with the password file): checked by the master at start
    /// and before a reload, so a setting they cannot use is refused while nothing depends
    /// on it yet.
    public func checkWorkerInputs() throws(ConfigurationError) {
        _ = try connectionString(direct: false)
        _ = try connectionString(direct: true)
    }

    public func connectionString(direct: Bool) throws(ConfigurationError) -> String {
        var url = Self.withKeepalives(direct && !databaseDirectURL.isEmpty ? databaseDirectURL : databaseURL)
        guard !databasePasswordFile.isEmpty else { return url }
        guard let bytes = Files.read(databasePasswordFile, limit: 4096),
              let password = String(validating: bytes, as: UTF8.self)?.trimmingSpaces, !password.isEmpty else {
            throw ConfigurationError(source: databasePasswordFile, message: "database_password_file cannot be read (missing, unreadable, or over 4096 bytes) or is empty")
        }
        let quoted = password.replacing("\\", with: "\\\\").replacing("'", with: "\\'")
        // A URI takes the password as a query parameter; a key=value string as a pair.
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return url + (url.contains("?") ? "&" : "?") + "password=" + Self.percentEncode(password)
        }
        url += " password='\(quoted)'"
        return url
    }

    /// TCP keepalives and a user timeout, unless the string sets keepalives itself: over a
    /// TCP path that dies silently a connection then fails within about half a minute
    /// (and reconnects), instead of waiting until the process is replaced. libpq ignores
    /// them on Unix sockets.
    static func withKeepalives(_ url: String) -> String {
        guard !url.contains("keepalives") else { return url }
        let settings = [("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
                        ("tcp_user_timeout", "30000")]
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return url + (url.contains("?") ? "&" : "?") + settings.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        }
        return url + " " + settings.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
