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

/// A worker's life: accept a FastCGI request, answer it, record it on the scoreboard,
/// until asked to stop or `max_requests` is reached.
enum Worker {
    static func run(_ pool: WorkerContext, listenFD: Int32, configuration: Configuration, requiredSchemaVersion: Int, pepper: [UInt8], openAPIDocument: [UInt8]?) -> Int32 {
        let logger = Logger(level: configuration.logLevel, component: "worker")
        let board = pool.scoreboard
        do {
            try Signals.installWorkerStop(listenFD: listenFD)
        } catch {
            logger.error("cannot install signal handlers", [("error", String(describing: error))])
            return 1
        }
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
                                          statementTimeoutMilliseconds: configuration.statementTimeoutMilliseconds)
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
        let context = AppContext(configuration: configuration, logger: logger, pool: PoolView(scoreboard: board),
                                 database: database, requiredSchemaVersion: requiredSchemaVersion, hasher: hasher,
                                 openAPIDocument: openAPIDocument)
        let application = Application(context: context)
        let limits = RequestLimits(maxBodyBytes: configuration.maxBodyBytes)
        board.setState(pool.slot, .idle)

        var served = 0
        while !Signals.isStopRequested {
            do {
                try responder.accept()
            } catch {
                if Signals.isStopRequested { break }
                // Transient (EMFILE, ECONNABORTED): back off briefly rather than spin.
                logger.warning("accept failed; retrying")
                var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
                nanosleep(&pause, nil)
                continue
            }
            board.beginRequest(pool.slot, monotonic: Clock.monotonicMicroseconds(), wall: Clock.wallMicroseconds())
            let response: Response
            let routeIndex: Int?
            let requestID: String
            var isHead = false
            do {
                let request = try responder.readRequest(limits: limits)
                requestID = request.requestID
                isHead = request.method == "HEAD"
                (response, routeIndex) = application.respond(to: request)
            } catch {
                requestID = error.requestID
                routeIndex = nil
                response = ProblemRenderer.response(for: error.problem, requestID: error.requestID)
            }
            responder.send(response, requestID: requestID, omitBody: isHead)
            responder.finish()
            board.endRequest(pool.slot, routeIndex: routeIndex, status: response.status.code)
            served += 1
            if pool.settings.maxRequests > 0 && served >= pool.settings.maxRequests {
                logger.debug("max_requests reached; exiting to be replaced", [("served", String(served))])
                break
            }
        }
        board.setState(pool.slot, .stopping)
        return 0
    }

    static func makeRequestID() -> String {
        (try? SecureRandom.hex(16)) ?? String(Clock.monotonicMicroseconds(), radix: 16)
    }
}
