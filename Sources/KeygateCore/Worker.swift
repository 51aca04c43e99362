#if canImport(Glibc)
import Glibc
#endif
import Cryptography
import FastCGI
import HTTP
import Posix
import Keys
import Postgres
import Prefork
import SharedMemory

/// A worker's life: accept a FastCGI request, answer it, record it on the scoreboard,
/// until asked to stop or `max_requests` is reached.
enum Worker {
    /// Failed accepts in a row (about a second of them) before a worker whose listener is
    /// gone gives up.
    static let acceptFailureLimit = 100
    /// How long a worker out of its own descriptors (EMFILE) waits before it exits to be
    /// replaced, as a recycle: a fresh process holds none it may have leaked. Shortages of
    /// the whole system (ENFILE, ENOBUFS, ENOMEM) are waited out: a new process would fare
    /// no better, and one failing at start would count as a crash.
    static let acceptFailureSeconds: Int64 = 10

    static func run(_ pool: WorkerContext, listenFD: Int32, configuration: Configuration, requiredSchemaVersion: Int, pepper: [UInt8],
                    openAPIDocument: [UInt8]?, host: HostState) -> Int32 {
        let logger = Logger(level: configuration.logLevel, component: "worker")
        let board = pool.scoreboard
        guard prepareChild(listenFD: listenFD, configuration: configuration, logger: logger) else { return 1 }
        let responder: FastCGIResponder
        do {
            responder = try FastCGIResponder(listenFD: listenFD, makeRequestID: makeRequestID)
        } catch {
            logger.error("cannot start FastCGI", [("error", String(describing: error))])
            return 1
        }
        // Connected lazily on first use, in this process only (never in the master).
        let database: PostgresConnection
        do {
            database = PostgresConnection(connectionString: try configuration.connectionString(direct: false),
                                          statementTimeoutMilliseconds: configuration.statementTimeoutMilliseconds,
                                          usesPreparedStatements: configuration.databasePreparedStatements)
        } catch {
            logger.error("cannot read the database settings", [("error", String(describing: error))])
            return 1
        }
        let hasher: KeyHasher
        do {
            hasher = try KeyHasher(pepper: pepper)
        } catch {
            logger.error("cannot set up key hashing", [("error", String(describing: error))])
            return 1
        }
        let context = AppContext(configuration: configuration, logger: logger, pool: PoolView(scoreboard: board, host: host),
                                 database: database, requiredSchemaVersion: requiredSchemaVersion, hasher: hasher,
                                 openAPIDocument: openAPIDocument, host: host)
        let application = Application(context: context)
        let limits = RequestLimits(maxBodyBytes: configuration.maxBodyBytes)
        board.setState(pool.slot, .idle)

        var served = 0
        var failedAccepts = 0
        var failingSince: Int64 = 0
        let pid = ProcessControl.currentPID
        while !Signals.isStopRequested {
            do {
                try responder.acceptConnection()
                failedAccepts = 0
            } catch {
                if Signals.isStopRequested { break }
                if error.isRoutine { continue }
                failedAccepts += 1
                let now = Clock.monotonicMicroseconds()
                if failedAccepts == 1 { failingSince = now }
                if failedAccepts == 1 || failedAccepts % 100 == 0 {
                    logger.warning("accept failed; retrying", [("error", error.description), ("in_a_row", String(failedAccepts))])
                }
                // A listener that is gone never comes back: after a run of failures the worker
                // exits and the master's back-off takes over, instead of spinning here for
                // ever. Out of descriptors or memory passes: the worker waits it out (a crash
                // exit of every worker at once would stop the pool).
                if error.isListenerGone && failedAccepts >= Self.acceptFailureLimit {
                    logger.error("accept keeps failing; the worker exits", [("error", error.description)])
                    return 1
                }
                if case .acceptFailed(errno: EMFILE) = error, now - failingSince >= Self.acceptFailureSeconds * 1_000_000 {
                    logger.error("accept has failed for \(Self.acceptFailureSeconds)s; the worker exits to be replaced",
                                 [("error", error.description)])
                    break
                }
                Clock.pause(microseconds: 10_000)
                continue
            }
            // Busy from the connection on: the pool's request timeout covers reading the params too.
            let started = Clock.monotonicMicroseconds()
            board.beginRequest(pool.slot, monotonic: started, wall: Clock.wallMicroseconds())
            do {
                try responder.readHead()
            } catch {
                board.abandonRequest(pool.slot)
                continue
            }
            let response: Response
            let routeIndex: Int?
            let requestID: String
            var request: Request?
            do {
                let decoded = try responder.readRequest(limits: limits)
                request = decoded
                requestID = decoded.requestID
                (response, routeIndex) = application.respond(to: decoded)
            } catch {
                context.current.reset()
                requestID = error.requestID
                routeIndex = nil
                response = ProblemRenderer.response(for: error.problem, requestID: error.requestID)
            }
            responder.send(response, requestID: requestID, omitBody: request?.method == "HEAD")
            responder.finish()
            board.endRequest(pool.slot, routeIndex: routeIndex, status: response.status.code)
            // After the response went out: one record for the housekeeper, never waiting.
            if let request, let key = context.current.key, let keyID = UUIDBytes.parse(key.id) {
                host.usage.append(UsageRecord(
                    keyID: keyID, at: Clock.wallMicroseconds(), method: request.originalMethod ?? request.method,
                    route: routeIndex.map { $0 < context.routeNames.count ? context.routeNames[$0] : "" } ?? "",
                    path: request.originalURI ?? request.path, status: response.status.code,
                    durationMicroseconds: Int(Clock.monotonicMicroseconds() - started), remoteAddress: request.remoteAddress,
                    counted: context.current.counted), writer: pid)
            }
            served += 1
            if pool.settings.maxRequests > 0 && served >= pool.settings.maxRequests {
                logger.debug("max_requests reached; exiting to be replaced", [("served", String(served))])
                break
            }
        }
        board.setState(pool.slot, .stopping)
        return 0
    }

    /// What every child of the pool does first (the housekeeper too): its scheduling
    /// policy, then the stop signals. False when the signals cannot be installed.
    static func prepareChild(listenFD: Int32, configuration: Configuration, logger: Logger) -> Bool {
        configuration.workerScheduling.apply(logger: logger)
        do {
            try Signals.installWorkerStop(listenFD: listenFD)
            return true
        } catch {
            logger.error("cannot install signal handlers", [("error", String(describing: error))])
            return false
        }
    }

    static func makeRequestID() -> String {
        (try? SecureRandom.hex(16)) ?? String(Clock.monotonicMicroseconds(), radix: 16)
    }
}
