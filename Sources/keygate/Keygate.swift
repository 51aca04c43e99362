import ArgumentParser
import HTTP
import KeygateCore
import Posix

@main
struct Keygate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygate",
        abstract: "The API-key authority and admin plane of the market-data warehouse.",
        subcommands: [Serve.self, Status.self, Migrate.self, BootstrapCommand.self, Keys.self, Users.self, Symbols.self, CheckConfig.self,
                      BenchCache.self]
    )
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Configuration file (default: $KEYGATE_CONFIG, else built-in defaults).")
    var config: String?

    var configurationPath: String? {
        config ?? Environment.current["KEYGATE_CONFIG"]
    }

    /// A bad or missing file is a failure (exit 1, the reason), not a usage error: the
    /// command line itself was right.
    func loadConfiguration() throws -> Configuration {
        do {
            return try Configuration.load(path: configurationPath, environment: Environment.current)
        } catch {
            throw CLIFailure(String(describing: error))
        }
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the pre-forked FastCGI worker pool (master process).")

    @OptionGroup var options: GlobalOptions

    @Option(help: "Number of workers (overrides the file; default 2 × CPUs).")
    var workers: Int?

    func run() throws {
        var environment = Environment.current
        if let workers { environment["KEYGATE_WORKERS"] = String(workers) }
        let code = Server.run(configurationPath: options.configurationPath, environment: environment)
        if code != 0 { throw ExitCode(code) }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the running pool's scoreboard.")

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let configuration = try options.loadConfiguration()
        let report: PoolReport
        do {
            report = try StatusReader.read(configuration: configuration)
        } catch {
            StandardError.write("keygate status: \(error)")
            throw ExitCode(3)
        }
        if json {
            print(String(decoding: JSON.encode(report), as: UTF8.self))
            return
        }
        print("master pid \(report.masterPid), generation \(report.generation), up \(Int(report.uptimeSeconds)) s, reloads \(report.reloads)")
        print("restarts: crash \(report.restarts.crash), recycle \(report.restarts.recycle), timeout \(report.restarts.timeout)")
        print(Table.render(
            header: ["SLOT", "PID", "STATE", "GEN", "REQUESTS", "CURRENT MS", "RSS MIB"],
            rows: report.workers.map { worker in
                [String(worker.slot), String(worker.pid), worker.state, String(worker.generation), String(worker.requests),
                 worker.currentRequestMs.map { String(Int($0)) } ?? "-",
                 String(Double(worker.rssBytes / 104_858) / 10)]
            }
        ))
        if let housekeeper = report.housekeeper {
            print("housekeeper pid \(housekeeper.pid), RSS \(Double(housekeeper.rssBytes / 104_858) / 10) MiB")
        }
        if let cache = report.keyCache {
            print("key cache: \(cache.entries)/\(cache.capacity) entries, \(cache.hits) hits, \(cache.misses) misses, \(cache.invalidations) invalidations, "
                  + "\(cache.evictions) evictions, \(cache.tooLarge) too large, \(cache.lockRecoveries) lock recoveries"
                  + (cache.databaseDownSince.map { ", database unreachable since \($0)" } ?? ""))
        }
        if let ring = report.usageRing {
            print("usage ring: \(ring.pending)/\(ring.capacity) waiting, \(ring.stored) stored, \(ring.dropped) dropped (ring full), \(ring.lost) lost")
        }
        if let limits = report.rateLimits {
            print("rate limits: \(limits.allowed) allowed, \(limits.refused) refused, \(limits.evictions) evictions, \(limits.lockRecoveries) lock recoveries")
        }
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the configuration and print the effective settings."
    )

    @OptionGroup var options: GlobalOptions

    func run() throws {
        let configuration = try options.loadConfiguration()
        for (key, value) in configuration.rendered { print("\(key) = \(value)") }
        StandardError.write("configuration OK (\(options.configurationPath ?? "built-in defaults"))")
    }
}

/// The micro-benchmark scripts/bench runs: the shared-memory part of a cached key check.
struct BenchCache: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-cache",
        abstract: "Time a cache lookup plus rate-limit check in a loop (for scripts/bench).",
        shouldDisplay: false
    )

    @Option(help: "Iterations per measurement.") var iterations = 1_000_000

    func run() throws {
        for result in try CacheBenchmark.run(iterations: max(1_000, iterations)) {
            print("\(result.name): \((result.nanosecondsPerOperation * 10).rounded() / 10) ns")
        }
    }
}
