#if canImport(Glibc)
import Glibc
#endif
import Testing
import Posix
@testable import KeygateCore

/// Writes `text` to a fresh temporary file and returns its path.
private func temporaryFile(_ text: String) throws -> String {
    try temporaryFile(Array(text.utf8))
}

private func temporaryFile(_ bytes: [UInt8]) throws -> String {
    var template = Array("/tmp/keygate-config-test-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    try #require(fd >= 0)
    defer { close(fd) }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    try #require(written == bytes.count)
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func applying(_ text: String, source: String = "test.conf") throws(ConfigurationError) -> Configuration {
    var configuration = Configuration()
    try configuration.apply(fileText: text, source: source)
    return configuration
}

private func applyError(_ text: String, source: String = "test.conf") -> ConfigurationError? {
    do {
        _ = try applying(text, source: source)
        return nil
    } catch {
        return error
    }
}

private func setError(_ key: String, _ value: String) -> ConfigurationError? {
    var configuration = Configuration()
    do {
        try configuration.set(key, value, source: "src")
        return nil
    } catch {
        return error
    }
}

@Suite("Configuration")
struct ConfigurationTests {
    @Test("defaults")
    func defaults() {
        let configuration = Configuration()
        #expect(configuration.listen.description == "/run/keygate/keygate.sock")
        #expect(configuration.listenMode == 0o660)
        #expect(configuration.listenBacklog == 511)
        #expect(configuration.runtimeDirectory == "/run/keygate")
        #expect(configuration.workers == 0)
        #expect(configuration.maxRequests == 10_000)
        #expect(configuration.requestTimeoutSeconds == 30)
        #expect(configuration.shutdownTimeoutSeconds == 30)
        #expect(configuration.emergencyRestartThreshold == 10)
        #expect(configuration.emergencyRestartIntervalSeconds == 60)
        #expect(configuration.maxBodyBytes == 1 << 20)
        #expect(configuration.logLevel == .info)
        #expect(configuration.debugRoutes == false)
        #expect(configuration.pidFilePath == "/run/keygate/keygate.pid")
        #expect(configuration.scoreboardPath == "/run/keygate/keygate.scoreboard")
    }

    @Test("load with no file and no environment gives the defaults")
    func loadDefaults() throws {
        let loaded = try Configuration.load(path: nil, environment: [:])
        #expect(loaded == Configuration())
    }

    @Test("workers = 0 resolves to twice the online CPUs; a positive count is used as is")
    func effectiveWorkers() throws {
        var configuration = Configuration()
        let cpus = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #expect(configuration.effectiveWorkers == 2 * cpus)
        #expect(configuration.poolSettings.workers == 2 * cpus)
        try configuration.set("workers", "3", source: "t")
        #expect(configuration.effectiveWorkers == 3)
        #expect(configuration.poolSettings.workers == 3)
    }

    @Test("poolSettings carries the pool-related values")
    func poolSettings() throws {
        let configuration = try applying("""
            workers = 4
            max_requests = 50
            request_timeout = 2.5
            shutdown_timeout = 7
            emergency_restart_threshold = 3
            emergency_restart_interval = 9
            """)
        let settings = configuration.poolSettings
        #expect(settings.workers == 4)
        #expect(settings.maxRequests == 50)
        #expect(settings.requestTimeoutSeconds == 2.5)
        #expect(settings.shutdownTimeoutSeconds == 7)
        #expect(settings.emergencyRestartThreshold == 3)
        #expect(settings.emergencyRestartIntervalSeconds == 9)
    }

    @Test("a file with comments, blank lines and tabs parses")
    func fileParsing() throws {
        let text = """
            # keygate configuration

            listen = 127.0.0.1:9000   # TCP for development
            \tworkers\t=\t4
               # an indented comment
            log_level=debug
            runtime_dir = /var/run/kg
            debug_routes = on
            max_body_bytes = 2048

            listen_mode = 0600
            """
        let configuration = try applying(text)
        #expect(configuration.listen.description == "127.0.0.1:9000")
        #expect(configuration.workers == 4)
        #expect(configuration.logLevel == .debug)
        #expect(configuration.runtimeDirectory == "/var/run/kg")
        #expect(configuration.pidFilePath == "/var/run/kg/keygate.pid")
        #expect(configuration.debugRoutes)
        #expect(configuration.maxBodyBytes == 2048)
        #expect(configuration.listenMode == 0o600)
        // Untouched settings keep their defaults.
        #expect(configuration.maxRequests == 10_000)
    }

    @Test("an empty file or one of comments only changes nothing")
    func emptyFile() throws {
        #expect(try applying("") == Configuration())
        #expect(try applying("# nothing\n\n   \n#workers = 9\n") == Configuration())
    }

    @Test("a later line overrides an earlier one")
    func laterWins() throws {
        #expect(try applying("workers = 2\nworkers = 5\n").workers == 5)
    }

    @Test("an unknown key is an error naming file:line and the key")
    func unknownKey() throws {
        let error = try #require(applyError("# header\n\nworkers = 2\nworkerz = 3\n", source: "/etc/keygate.conf"))
        #expect(error.source == "/etc/keygate.conf:4")
        #expect(error.message.contains("workerz"))
        #expect(error.message.contains("unknown"))
        #expect(error.description.hasPrefix("/etc/keygate.conf:4: "))
    }

    @Test("a line without '=' is an error naming file:line")
    func missingEquals() throws {
        let error = try #require(applyError("workers = 2\n\njust words\n", source: "k.conf"))
        #expect(error.source == "k.conf:3")
    }

    @Test("a bad value in a file names its line")
    func badValueLine() throws {
        let error = try #require(applyError("listen = /tmp/s\nworkers = -1\n", source: "k.conf"))
        #expect(error.source == "k.conf:2")
        #expect(error.message.contains("workers"))
        #expect(error.message.contains("-1"))
    }

    @Test("bad values are refused", arguments: [
        ("workers", "-1"), ("workers", "257"), ("workers", "many"), ("workers", ""), ("workers", "2.5"),
        ("listen_mode", "999"), ("listen_mode", "1000"), ("listen_mode", "rw"), ("listen_mode", "-1"),
        ("log_level", "loud"), ("log_level", ""),
        ("listen", "nowhere"), ("listen", "127.0.0.1:0"),
        ("listen_backlog", "0"), ("listen_backlog", "65536"),
        ("runtime_dir", "relative/dir"), ("runtime_dir", ""),
        ("max_requests", "-5"),
        ("request_timeout", "-1"), ("request_timeout", "86401"), ("request_timeout", "soon"), ("request_timeout", "nan"),
        ("shutdown_timeout", "inf"),
        ("emergency_restart_threshold", "10001"),
        ("emergency_restart_interval", "-0.5"),
        ("max_body_bytes", "1023"), ("max_body_bytes", "67108865"),
        ("debug_routes", "maybe"), ("debug_routes", ""),
        ("worker_scheduling", "fifo"), ("worker_scheduling", ""),
    ])
    func badValues(key: String, value: String) throws {
        let error = try #require(setError(key, value))
        #expect(error.source == "src")
        #expect(error.message.hasPrefix("\(key): "))
    }

    @Test("values at the edges of their ranges are accepted", arguments: [
        ("workers", "0"), ("workers", "256"), ("listen_mode", "0"), ("listen_mode", "777"), ("listen_mode", "0777"),
        ("listen_backlog", "1"), ("listen_backlog", "65535"), ("max_requests", "0"),
        ("request_timeout", "0"), ("request_timeout", "86400"), ("max_body_bytes", "1024"), ("max_body_bytes", "67108864"),
        ("emergency_restart_threshold", "0"),
    ])
    func edgeValues(key: String, value: String) {
        #expect(setError(key, value) == nil)
    }

    @Test("worker_scheduling takes batch (the default) or normal, in any case")
    func workerScheduling() throws {
        #expect(Configuration().workerScheduling == .batch)
        var configuration = Configuration()
        try configuration.set("worker_scheduling", "Normal", source: "t")
        #expect(configuration.workerScheduling == .normal)
        try configuration.set("worker_scheduling", "batch", source: "t")
        #expect(configuration.workerScheduling == .batch)
    }

    @Test("flags accept on/off words in any case", arguments: [
        ("on", true), ("ON", true), ("true", true), ("yes", true), ("1", true),
        ("off", false), ("Off", false), ("false", false), ("no", false), ("0", false),
    ])
    func flags(value: String, expected: Bool) throws {
        var configuration = Configuration()
        configuration.debugRoutes = !expected
        try configuration.set("debug_routes", value, source: "t")
        #expect(configuration.debugRoutes == expected)
    }

    @Test("log levels are case-insensitive")
    func logLevels() throws {
        var configuration = Configuration()
        for (text, level) in [("debug", LogLevel.debug), ("INFO", .info), ("Warning", .warning), ("error", .error)] {
            try configuration.set("log_level", text, source: "t")
            #expect(configuration.logLevel == level)
        }
    }

    @Test("listen_mode is octal")
    func octalMode() throws {
        var configuration = Configuration()
        try configuration.set("listen_mode", "0640", source: "t")
        #expect(configuration.listenMode == 0o640)
        try configuration.set("listen_mode", "755", source: "t")
        #expect(configuration.listenMode == 0o755)
    }

    @Test("listen accepts a unix path and host:port")
    func listenValues() throws {
        var configuration = Configuration()
        try configuration.set("listen", "unix:/tmp/kg.sock", source: "t")
        #expect(configuration.listen.description == "/tmp/kg.sock")
        try configuration.set("listen", "[::1]:9001", source: "t")
        #expect(configuration.listen.description == "[::1]:9001")
    }

    @Test("a failed set leaves the setting unchanged")
    func failedSetKeepsValue() throws {
        var configuration = Configuration()
        try configuration.set("workers", "7", source: "t")
        #expect(throws: ConfigurationError.self) { try configuration.set("workers", "-1", source: "t") }
        #expect(configuration.workers == 7)
    }

    @Test("rendered lists every setting in file format")
    func rendered() throws {
        var configuration = Configuration()
        try configuration.set("listen_mode", "0600", source: "t")
        try configuration.set("workers", "5", source: "t")
        try configuration.set("debug_routes", "on", source: "t")
        let rendered = Dictionary(uniqueKeysWithValues: configuration.rendered.map { ($0.key, $0.value) })
        #expect(rendered["listen_mode"] == "0600")
        #expect(rendered["workers"] == "5")
        #expect(rendered["debug_routes"] == "on")
        #expect(rendered["log_level"] == "info")
        #expect(rendered.count == 33)
        #expect(rendered["worker_scheduling"] == "batch")
        // Every rendered key is one the file accepts.
        var copy = Configuration()
        for (key, value) in configuration.rendered {
            try copy.set(key, value, source: "rendered")
        }
        #expect(copy == configuration)
    }
}

@Suite("Configuration.load")
struct ConfigurationLoadTests {
    @Test("load reads the file")
    func loadsFile() throws {
        let path = try temporaryFile("workers = 5\nlog_level = warning\n")
        defer { unlink(path) }
        let configuration = try Configuration.load(path: path, environment: [:])
        #expect(configuration.workers == 5)
        #expect(configuration.logLevel == .warning)
    }

    @Test("KEYGATE_* environment variables override the file")
    func environmentWins() throws {
        let path = try temporaryFile("workers = 5\nmax_requests = 100\n")
        defer { unlink(path) }
        let configuration = try Configuration.load(path: path, environment: [
            "KEYGATE_WORKERS": "3",
            "KEYGATE_DEBUG_ROUTES": "on",
            "WORKERS": "9",
            "PATH": "/usr/bin",
        ])
        #expect(configuration.workers == 3)
        #expect(configuration.debugRoutes)
        #expect(configuration.maxRequests == 100)
    }

    @Test("KEYGATE_CONFIG is not a setting")
    func configVariableIgnored() throws {
        let configuration = try Configuration.load(path: nil, environment: ["KEYGATE_CONFIG": "/etc/keygate.conf"])
        #expect(configuration == Configuration())
    }

    @Test("a bad environment value is an error naming the variable")
    func badEnvironment() throws {
        do {
            _ = try Configuration.load(path: nil, environment: ["KEYGATE_LOG_LEVEL": "loud"])
            Issue.record("loaded a bad log level")
        } catch {
            #expect(error.source == "environment KEYGATE_LOG_LEVEL")
            #expect(error.message.contains("loud"))
        }
    }

    @Test("an unknown KEYGATE_ variable is an error")
    func unknownEnvironment() throws {
        do {
            _ = try Configuration.load(path: nil, environment: ["KEYGATE_WORKERZ": "2"])
            Issue.record("loaded an unknown setting")
        } catch {
            #expect(error.source == "environment KEYGATE_WORKERZ")
        }
    }

    @Test("a file error is reported even when the environment would fix the value")
    func fileErrorFirst() throws {
        let path = try temporaryFile("workers = -1\n")
        defer { unlink(path) }
        do {
            _ = try Configuration.load(path: path, environment: ["KEYGATE_WORKERS": "2"])
            Issue.record("loaded a bad file")
        } catch {
            #expect(error.source == "\(path):1")
        }
    }

    @Test("a missing file is an error naming it")
    func missingFile() throws {
        let path = "/tmp/keygate-definitely-missing-\(getpid()).conf"
        do {
            _ = try Configuration.load(path: path, environment: [:])
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.source == path)
            #expect(error.message.contains("read"))
        }
    }

    @Test("a file that is not UTF-8 is an error")
    func notUTF8() throws {
        let path = try temporaryFile([0x77, 0x6F, 0x72, 0x6B, 0xFF, 0xFE, 0x0A])
        defer { unlink(path) }
        do {
            _ = try Configuration.load(path: path, environment: [:])
            Issue.record("loaded a non-UTF-8 file")
        } catch {
            #expect(error.source == path)
            #expect(error.message.contains("UTF-8"))
        }
    }
}

@Suite("Timestamp")
struct TimestampTests {
    @Test("known instants", arguments: [
        (Int64(0), 6, "1970-01-01T00:00:00.000000Z"),
        (1_700_000_000_123_456, 6, "2023-11-14T22:13:20.123456Z"),
        (1_700_000_000_123_456, 3, "2023-11-14T22:13:20.123Z"),
        (1_700_000_000_123_456, 0, "2023-11-14T22:13:20Z"),
        (1_700_000_000_000_005, 6, "2023-11-14T22:13:20.000005Z"),
        (1_700_000_000_000_999, 3, "2023-11-14T22:13:20.000Z"),
        (951_782_400_000_000, 6, "2000-02-29T00:00:00.000000Z"),
        (253_402_300_799_999_999, 6, "9999-12-31T23:59:59.999999Z"),
        (86_399_500_000, 1, "1970-01-01T23:59:59.5Z"),
        // Before 1970 (schemathesis sent such an expiry; the formatter crashed a worker).
        (-1, 6, "1969-12-31T23:59:59.999999Z"),
        (-28_011_642_100_000, 1, "1969-02-10T18:59:17.9Z"),
        (-62_135_596_800_000_000, 0, "0001-01-01T00:00:00Z"),
        // Past year 9999 the year takes the digits it needs.
        (253_402_300_800_000_000, 6, "10000-01-01T00:00:00.000000Z"),
        (253_402_300_800_120_000, 2, "10000-01-01T00:00:00.12Z"),
    ])
    func knownInstants(microseconds: Int64, digits: Int, expected: String) {
        #expect(Timestamp.rfc3339(microseconds: microseconds, fractionDigits: digits) == expected)
    }

    @Test("six fraction digits by default")
    func defaultDigits() {
        #expect(Timestamp.rfc3339(microseconds: 1_000_001) == "1970-01-01T00:00:01.000001Z")
    }
}

@Suite("Logger")
struct LoggerTests {
    @Test("quote escapes quotes, backslashes, newlines and control characters")
    func quote() {
        #expect(Logger.quote("plain") == "\"plain\"")
        #expect(Logger.quote("say \"hi\"") == #""say \"hi\"""#)
        #expect(Logger.quote("a\\b") == #""a\\b""#)
        #expect(Logger.quote("line\nnext") == #""line\nnext""#)
        #expect(Logger.quote("tab\tbell\u{7}") == #""tab\u{9}bell\u{7}""#)
        #expect(Logger.quote("żółw") == "\"żółw\"")
    }

    @Test("levels are ordered debug < info < warning < error")
    func levelOrder() {
        #expect(LogLevel.debug < .info && LogLevel.info < .warning && LogLevel.warning < .error)
        #expect(!(LogLevel.error < .debug))
    }
}


@Suite("Configuration line endings")
struct ConfigurationLineEndingTests {
    @Test("CRLF files are read line by line, comments included")
    func crlf() throws {
        var configuration = Configuration()
        try configuration.apply(fileText: "# keygate\r\nworkers = 4\r\nlog_level = debug\r\n", source: "test.conf")
        #expect(configuration.workers == 4)
        #expect(configuration.logLevel == .debug)
    }
}

@Suite("Documented configuration")
struct DocumentedConfigurationTests {
    @Test("keygate.conf.example loads and states every setting at its default")
    func example() throws {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        let path = parts.joined(separator: "/") + "/keygate.conf.example"
        let loaded = try Configuration.load(path: path, environment: [:])
        #expect(loaded == Configuration())
        let bytes = try #require(Files.read(path))
        let text = try #require(String(validating: bytes, as: UTF8.self))
        for (key, _) in Configuration().rendered {
            #expect(text.contains("\n\(key) ="), "keygate.conf.example does not document \(key)")
        }
    }
}

@Suite("Reload")
struct ReloadTests {
    @Test("a reload keeps the restart-only settings and names the ones it could not apply")
    func reloadKeepsRestartOnlySettings() {
        let running = Configuration()
        var reloaded = running
        reloaded.pepperFile = "/elsewhere/pepper"
        reloaded.openAPIFile = "/elsewhere/openapi.json"
        reloaded.keyCacheEntries = running.keyCacheEntries * 2
        reloaded.logLevel = .debug
        reloaded.maxRequests = 7
        #expect(Set(Server.restartOnlyChanges(reloaded, from: running)) == ["pepper_file", "openapi_file", "key_cache_entries"])
        let applied = Server.keepingRestartOnlySettings(reloaded, of: running)
        #expect(applied.pepperFile == running.pepperFile && applied.openAPIFile == running.openAPIFile)
        #expect(applied.keyCacheEntries == running.keyCacheEntries)
        #expect(applied.logLevel == .debug && applied.maxRequests == 7)
        #expect(Server.restartOnlyChanges(applied, from: running).isEmpty)
    }

    @Test("connection strings get TCP keepalives unless they set them, and the password file's password, quoted")
    func connectionStrings() throws {
        var configuration = Configuration()
        configuration.databaseURL = "host=db.internal dbname=keygate user=keygate"
        #expect(try configuration.connectionString(direct: false)
                == "host=db.internal dbname=keygate user=keygate keepalives=1 keepalives_idle=10 keepalives_interval=5 keepalives_count=3 tcp_user_timeout=30000")
        configuration.databaseURL = "postgresql://keygate@db.internal/keygate?sslmode=require"
        #expect(try configuration.connectionString(direct: false)
                == "postgresql://keygate@db.internal/keygate?sslmode=require&keepalives=1&keepalives_idle=10&keepalives_interval=5&keepalives_count=3&tcp_user_timeout=30000")
        configuration.databaseURL = "host=db.internal keepalives_idle=60"
        #expect(try configuration.connectionString(direct: false) == "host=db.internal keepalives_idle=60") // the operator's choice
        configuration.databaseDirectURL = "postgres://db.internal/keygate"
        #expect(try configuration.connectionString(direct: true).hasPrefix("postgres://db.internal/keygate?keepalives=1&"))
        // A password from its file: quoted in a key=value string, percent-encoded in a URI.
        configuration.databasePasswordFile = try temporaryFile("it's a \\secret&\n")
        configuration.databaseURL = "host=db.internal"
        #expect(try configuration.connectionString(direct: false).hasSuffix(" password='it\\'s a \\\\secret&'"))
        #expect(try configuration.connectionString(direct: true).hasSuffix("&password=it%27s%20a%20%5Csecret%26"))
    }
}
