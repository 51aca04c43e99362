#if canImport(Glibc)
import Glibc
#endif
import FastCGI
import Posix
import Prefork
import SharedMemory
import Keys
import Storage

/// `keygate serve`: prepares everything shared (socket, scoreboard, pid file) in the
/// master, then hands over to the pool's `Master`.
public enum Server {
    /// Scoreboard slots: room for a full reload overlap of the largest pool (256 old and
    /// 256 new workers) and the housekeeper and its successor.
    static let slotCapacity = 2 * 256 + 2
    /// Routes the metrics counters can tell apart.
    static let routeCapacity = 128

    public static func run(configurationPath: String?, environment: [String: String]) -> Int32 {
        let configuration: Configuration
        do {
            configuration = try Configuration.load(path: configurationPath, environment: environment)
        } catch {
            StandardError.write("keygate: \(error)")
            return 2
        }
        let logger = Logger(level: configuration.logLevel, component: "master")
        do {
            try configuration.checkWorkerInputs()
        } catch {
            logger.error("cannot start", [("error", String(describing: error))])
            return 1
        }
        // The schema version this binary needs, from the migration files (no database
        // connection in the master: workers connect after fork).
        let requiredSchemaVersion: Int
        do {
            requiredSchemaVersion = try Migration.load(directory: configuration.migrationsDirectory).last?.version ?? 0
        } catch {
            logger.error("cannot read migrations", [("error", String(describing: error))])
            return 1
        }
        // The pepper is read once, here; each worker builds its own HMAC context after fork.
        let pepper: [UInt8]
        do {
            pepper = try KeyHasher.pepper(fromFile: configuration.pepperFile)
        } catch {
            logger.error("cannot read the pepper", [("error", String(describing: error))])
            return 1
        }
        let openAPIDocument = Files.read(configuration.openAPIFile, limit: 4 << 20)
        if openAPIDocument == nil {
            logger.warning("OpenAPI document not readable; /api/v1/openapi.json will answer 503", [("openapi_file", configuration.openAPIFile)])
        }
        do {
            try Directories.create(configuration.runtimeDirectory)
            if let running = runningMasterPID(pidFile: configuration.pidFilePath) {
                logger.error("keygate is already running", [("pid", String(running)), ("pid_file", configuration.pidFilePath)])
                return 1
            }
            let listenFD = try Listener.open(configuration.listen, backlog: Int32(configuration.listenBacklog), mode: mode_t(configuration.listenMode))
            let region = try SharedRegion.create(
                path: configuration.scoreboardPath,
                size: Scoreboard.byteCount(slotCapacity: slotCapacity, routeCapacity: routeCapacity)
            )
            let scoreboard = Scoreboard.create(in: region, slotCapacity: slotCapacity, routeCapacity: routeCapacity)
            // Sized once at start: a reload keeps the segments (and what they hold).
            let host = try HostState.create(configuration, logger: logger)
            try Files.write("\(ProcessControl.currentPID)\n", to: configuration.pidFilePath)
            defer {
                Files.remove(configuration.pidFilePath)
                for path in [configuration.keyCachePath, configuration.rateTablePath] { Files.remove(path) }
                // Records not stored yet stay for the next start (the database may have been away).
                let left = host.usage.statistics.pending
                if left == 0 {
                    Files.remove(configuration.usageRingPath)
                } else {
                    logger.warning("usage records not stored are kept for the next start",
                                   [("records", String(left)), ("usage_ring", configuration.usageRingPath)])
                }
                if case .unix(let path) = configuration.listen { Files.remove(path) }
                close(listenFD)
            }
            logger.info("listening", [("address", configuration.listen.description), ("workers", String(configuration.effectiveWorkers))])

            // Workers fork from the master, so they see whatever the last reload stored here.
            let current = ConfigurationBox(configuration)
            let master = Master(
                scoreboard: scoreboard,
                settings: configuration.poolSettings,
                log: { logger.info($0) },
                reloadSettings: {
                    do {
                        let reloaded = try Configuration.load(path: configurationPath, environment: environment)
                        let applied = Self.keepingRestartOnlySettings(reloaded, of: current.value)
                        // What each new worker reads first: refused here, the running workers
                        // stay; found by the new ones, every one of them would exit at once
                        // while the old ones retire, and the pool would stop for a crash loop.
                        try applied.checkWorkerInputs()
                        let ignored = Self.restartOnlyChanges(reloaded, from: current.value)
                        if !ignored.isEmpty {
                            logger.warning("these settings take effect only after a restart; kept as they were",
                                           [("settings", ignored.joined(separator: ","))])
                        }
                        current.value = applied
                        return applied.poolSettings
                    } catch {
                        logger.error("reload failed", [("error", String(describing: error))])
                        return nil
                    }
                },
                runWorker: { context in
                    Worker.run(context, listenFD: listenFD, configuration: current.value, requiredSchemaVersion: requiredSchemaVersion, pepper: pepper,
                               openAPIDocument: openAPIDocument, host: host)
                },
                runHousekeeper: { context in
                    Housekeeper.run(context, listenFD: listenFD, configuration: current.value, host: host)
                }
            )
            return try master.run()
        } catch {
            logger.error("cannot start", [("error", String(describing: error))])
            return 1
        }
    }

    /// Settings a reload cannot apply: the socket and the segments are made once, and the
    /// pepper, the OpenAPI document and the schema version the binary needs are read once
    /// by the master and handed to every worker (a pepper changed by accident would turn
    /// every key away).
    static func keepingRestartOnlySettings(_ reloaded: Configuration, of current: Configuration) -> Configuration {
        var applied = reloaded
        applied.listen = current.listen
        applied.listenMode = current.listenMode
        applied.listenBacklog = current.listenBacklog
        applied.runtimeDirectory = current.runtimeDirectory
        applied.keyCacheEntries = current.keyCacheEntries
        applied.rateLimitEntries = current.rateLimitEntries
        applied.usageRingEntries = current.usageRingEntries
        applied.pepperFile = current.pepperFile
        applied.openAPIFile = current.openAPIFile
        applied.migrationsDirectory = current.migrationsDirectory
        return applied
    }

    /// The restart-only settings that `reloaded` changes, by their configuration names.
    static func restartOnlyChanges(_ reloaded: Configuration, from current: Configuration) -> [String] {
        let kept = keepingRestartOnlySettings(reloaded, of: current).rendered
        return zip(reloaded.rendered, kept).compactMap { new, old in new.value == old.value ? nil : new.key }
    }

    /// The pid in `pidFile` when that process is alive.
    static func runningMasterPID(pidFile: String) -> Int32? {
        guard let bytes = Files.read(pidFile),
              let pid = Int32(String(decoding: bytes, as: UTF8.self).trimmingSpaces), pid > 0,
              pid != ProcessControl.currentPID, ProcessControl.isAlive(pid) else { return nil }
        return pid
    }
}

/// The master's current configuration (single-threaded; replaced on reload).
final class ConfigurationBox {
    var value: Configuration
    init(_ value: Configuration) { self.value = value }
}
