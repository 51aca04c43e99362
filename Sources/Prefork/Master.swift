#if canImport(Glibc)
import Glibc
#endif
import Posix
import SharedMemory

/// The pool's master process, php-fpm style: single-threaded, it forks the workers,
/// reaps and replaces them, recycles and times them out, reloads on SIGHUP and stops
/// gracefully on SIGTERM/SIGINT. Signal handlers only write to a self-pipe; all work
/// happens in `run()`'s loop.
public final class Master {
    public typealias WorkerBody = (WorkerContext) -> Int32
    public typealias Reload = () -> PoolSettings?
    public typealias Log = (String) -> Void

    private let scoreboard: Scoreboard
    private var settings: PoolSettings
    private let runWorker: WorkerBody
    private let runHousekeeper: WorkerBody?
    private let reloadSettings: Reload
    private let log: Log

    private var children: [pid_t: ChildProcess] = [:]
    private var respawns: [Respawn] = []
    private var crashes = CrashHistory()
    /// The housekeeper's own back-off: its crashes never stop the pool (the workers serve
    /// without it; usage waits in the ring), they are only logged and retried more slowly.
    private var housekeeperCrashes = CrashHistory()
    private var generation = 1
    private var isStopping = false
    private var exitCode: Int32 = 0
    private var lastRSSSample: Int64 = 0

    /// - Parameters:
    ///   - runWorker: the body of a worker, run in the forked child; its result is the exit code.
    ///   - runHousekeeper: the body of the one housekeeper process, supervised like a worker; nil = none.
    ///   - reloadSettings: called on SIGHUP; nil keeps the current settings (a bad file is logged by the caller).
    public init(scoreboard: Scoreboard, settings: PoolSettings,
                log: @escaping Log, reloadSettings: @escaping Reload, runWorker: @escaping WorkerBody,
                runHousekeeper: WorkerBody? = nil) {
        self.scoreboard = scoreboard
        self.settings = settings
        self.runWorker = runWorker
        self.runHousekeeper = runHousekeeper
        self.reloadSettings = reloadSettings
        self.log = log
    }

    /// Runs the pool until it is stopped; returns the process exit code.
    public func run() throws(POSIXError) -> Int32 {
        let pipe = try SelfPipe()
        // SIGUSR1/2 too: left at their default they would end the master abruptly.
        try Signals.routeToPipe([SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2], writeFD: pipe.writeFD)
        Signals.ignoreBrokenPipe()
        scoreboard.setGeneration(generation)
        log("pool starting: \(settings.workers) workers, max_requests=\(settings.maxRequests), request_timeout=\(settings.requestTimeoutSeconds)s")
        ensureHousekeeper(extraClose: [pipe.readFD, pipe.writeFD])
        for _ in 0..<settings.workers { spawn(.worker, extraClose: [pipe.readFD, pipe.writeFD]) }

        while true {
            for signal in pipe.wait(timeoutMilliseconds: 50) {
                switch signal {
                case SIGTERM, SIGINT, SIGQUIT: beginStop(reason: "signal \(signal)")
                case SIGHUP: reload(extraClose: [pipe.readFD, pipe.writeFD])
                case SIGUSR1, SIGUSR2: log("signal \(signal) ignored (SIGHUP reloads, SIGTERM stops)")
                default: break // SIGCHLD: reaped below
                }
            }
            reap()
            let now = Clock.monotonicMicroseconds()
            escalateStops(now: now)
            if isStopping {
                stopHousekeeperAfterWorkers(now: now)
                if children.isEmpty {
                    log("pool stopped")
                    return exitCode
                }
                continue
            }
            startDueRespawns(now: now, extraClose: [pipe.readFD, pipe.writeFD])
            ensureHousekeeper(extraClose: [pipe.readFD, pipe.writeFD])
            enforceTimeouts(now: now)
            sampleResidentMemory(now: now)
        }
    }

    // MARK: Spawning

    private func spawn(_ role: ChildRole, extraClose: [Int32]) {
        guard let slot = freeSlot() else {
            log("no free scoreboard slot: \(role) not started; retrying in 1 s")
            respawns.append(Respawn(due: Clock.monotonicMicroseconds() + 1_000_000, role: role))
            return
        }
        scoreboard.claim(slot, generation: generation, state: role == .housekeeper ? .housekeeping : .starting)
        let pid: pid_t
        let master = getpid()
        do {
            pid = try ProcessControl.fork()
        } catch {
            scoreboard.release(slot)
            log("fork failed: \(error); retrying in 1 s")
            respawns.append(Respawn(due: Clock.monotonicMicroseconds() + 1_000_000, role: role))
            return
        }
        if pid == 0 {
            Signals.resetForChild()
            Signals.setParentDeathSignal(SIGTERM)
            // The master may have died before the line above: no signal would ever come.
            if getppid() != master { ProcessControl.exitImmediately(0) }
            for fd in extraClose { close(fd) }
            scoreboard.setPID(slot, getpid())
            let context = WorkerContext(slot: slot, generation: generation, scoreboard: scoreboard, settings: settings)
            let code = role == .housekeeper ? (runHousekeeper ?? runWorker)(context) : runWorker(context)
            ProcessControl.exitImmediately(code)
        }
        scoreboard.setPID(slot, pid)
        children[pid] = ChildProcess(role: role, pid: pid, slot: slot, generation: generation, startedAt: Clock.monotonicMicroseconds())
    }

    private func freeSlot() -> Int? {
        let used = Set(children.values.map(\.slot))
        return (0..<scoreboard.slotCapacity).first { !used.contains($0) }
    }

    /// Workers of the current generation that are alive or about to be started.
    private var currentWorkerCount: Int {
        children.values.filter { $0.role == .worker && $0.generation == generation && $0.stopRequestedAt == nil }.count
            + respawns.filter { $0.role == .worker }.count
    }

    private var hasHousekeeper: Bool {
        children.values.contains { $0.role == .housekeeper }
    }

    /// Starts the housekeeper when none is alive or pending (first start, after a reload).
    private func ensureHousekeeper(extraClose: [Int32]) {
        guard runHousekeeper != nil, !hasHousekeeper, !respawns.contains(where: { $0.role == .housekeeper }) else { return }
        spawn(.housekeeper, extraClose: extraClose)
    }

    private func startDueRespawns(now: Int64, extraClose: [Int32]) {
        let due = respawns.filter { $0.due <= now }
        respawns.removeAll { $0.due <= now }
        for respawn in due {
            switch respawn.role {
            case .worker where currentWorkerCount < settings.workers: spawn(.worker, extraClose: extraClose)
            case .housekeeper where !hasHousekeeper: spawn(.housekeeper, extraClose: extraClose)
            default: break
            }
        }
    }

    // MARK: Reaping

    private func reap() {
        while let (pid, reason) = ProcessControl.reapOne() {
            guard let child = children.removeValue(forKey: pid) else { continue }
            scoreboard.release(child.slot)
            let now = Clock.monotonicMicroseconds()
            if isStopping || child.generation != generation || (child.stopRequestedAt != nil && !child.killedForTimeout) {
                continue // asked to go: stop, reload, or shrink
            }
            if child.killedForTimeout {
                log("\(child.role) \(pid) killed for taking too long; replacing it")
                scoreboard.countTimeoutKill()
                respawns.append(Respawn(due: now, role: child.role))
                continue
            }
            if now - child.startedAt > 10_000_000 && child.role == .worker { crashes.noteHealthyRun() }
            if reason == .exited(0) {
                // Planned exit: max_requests reached, or someone sent it SIGTERM.
                scoreboard.countRecycle()
                respawns.append(Respawn(due: now, role: child.role))
                continue
            }
            scoreboard.countCrashRestart()
            let window = Int64(settings.emergencyRestartIntervalSeconds * 1_000_000)
            if child.role == .housekeeper {
                if now - child.startedAt > 10_000_000 { housekeeperCrashes.noteHealthyRun() }
                let delay = housekeeperCrashes.record(at: now, windowMicroseconds: window)
                log("housekeeper \(pid) died (\(reason)); replacing it in \(delay / 1000) ms")
                respawns.append(Respawn(due: now + delay, role: .housekeeper))
                continue
            }
            let delay = crashes.record(at: now, windowMicroseconds: window)
            let recent = crashes.recentCount(at: now, windowMicroseconds: window)
            if settings.emergencyRestartThreshold > 0 && recent >= settings.emergencyRestartThreshold {
                log("EMERGENCY: \(recent) worker crashes within \(settings.emergencyRestartIntervalSeconds)s (last: \(reason)); stopping the pool instead of crash-looping")
                exitCode = 1
                beginStop(reason: "crash loop")
                return
            }
            log("\(child.role) \(pid) died (\(reason)); replacing it in \(delay / 1000) ms")
            respawns.append(Respawn(due: now + delay, role: child.role))
        }
    }

    // MARK: Timeouts and memory

    private func enforceTimeouts(now: Int64) {
        // A housekeeper that has not beaten for `housekeeperStallSeconds` is stuck (it beats
        // between statements, which the statement timeout bounds): killed and replaced.
        let stall = Int64(settings.housekeeperStallSeconds * 1_000_000)
        for (pid, child) in children where child.role == .housekeeper && !child.killSent {
            let beat = scoreboard.snapshot(child.slot).requestStartMonotonic
            guard beat > 0, now - beat > stall else { continue }
            log("housekeeper \(pid) has not made progress for \(Int(settings.housekeeperStallSeconds))s: SIGKILL")
            children[pid]?.killedForTimeout = true
            children[pid]?.killSent = true
            children[pid]?.stopRequestedAt = now
            ProcessControl.send(SIGKILL, to: pid)
        }
        guard settings.requestTimeoutSeconds > 0 else { return }
        let limit = Int64(settings.requestTimeoutSeconds * 1_000_000)
        for (pid, child) in children where !child.killedForTimeout && child.role == .worker {
            let slot = scoreboard.snapshot(child.slot)
            guard slot.state == .busy, slot.requestStartMonotonic > 0, now - slot.requestStartMonotonic > limit else { continue }
            log("worker \(pid) busy on one request for more than \(settings.requestTimeoutSeconds)s: SIGKILL")
            children[pid]?.killedForTimeout = true
            children[pid]?.killSent = true
            children[pid]?.stopRequestedAt = now
            ProcessControl.send(SIGKILL, to: pid)
        }
    }

    private func sampleResidentMemory(now: Int64) {
        guard now - lastRSSSample > 1_000_000 else { return }
        lastRSSSample = now
        for child in children.values {
            scoreboard.setResidentBytes(child.slot, ProcessControl.residentBytes(of: child.pid))
        }
    }

    // MARK: Reload and stop

    private func reload(extraClose: [Int32]) {
        guard !isStopping else { return }
        guard let newSettings = reloadSettings() else {
            log("reload: configuration not valid; keeping the running workers")
            return
        }
        settings = newSettings
        let now = Clock.monotonicMicroseconds()
        let retiring = children.values.filter { $0.generation == generation }.map(\.pid)
        generation += 1
        scoreboard.setGeneration(generation)
        scoreboard.countReload()
        respawns.removeAll()
        // New workers first, then retire the old ones: the listening socket never lacks an acceptor.
        // The old housekeeper is retired with the old workers; its successor starts once it
        // has exited (`ensureHousekeeper`): the usage ring has one reader at a time.
        for _ in 0..<settings.workers { spawn(.worker, extraClose: extraClose) }
        for pid in retiring {
            children[pid]?.stopRequestedAt = now
            if let child = children[pid], child.role == .worker { scoreboard.setState(child.slot, .stopping) }
            ProcessControl.send(SIGTERM, to: pid)
        }
        log("reload: generation \(generation), \(settings.workers) workers started, \(retiring.count) retiring")
    }

    /// Children asked to stop (shutdown or reload) get `shutdown_timeout` to finish, then SIGKILL.
    private func escalateStops(now: Int64) {
        let limit = Int64(settings.shutdownTimeoutSeconds * 1_000_000)
        for (pid, child) in children where !child.killSent {
            guard let asked = child.stopRequestedAt, now - asked > limit else { continue }
            log("worker \(pid) still running \(settings.shutdownTimeoutSeconds)s after it was asked to stop: SIGKILL")
            children[pid]?.killSent = true
            ProcessControl.send(SIGKILL, to: pid)
        }
    }

    private func beginStop(reason: String) {
        guard !isStopping else { return }
        log("graceful stop (\(reason)): waiting up to \(settings.shutdownTimeoutSeconds)s for in-flight requests")
        let now = Clock.monotonicMicroseconds()
        isStopping = true
        respawns.removeAll()
        for (pid, child) in children where child.role == .worker {
            children[pid]?.stopRequestedAt = now
            scoreboard.setState(child.slot, .stopping)
            ProcessControl.send(SIGTERM, to: pid)
        }
        stopHousekeeperAfterWorkers(now: now)
    }

    /// The housekeeper stops last, so it can store what the last requests recorded.
    private func stopHousekeeperAfterWorkers(now: Int64) {
        guard !children.values.contains(where: { $0.role == .worker }) else { return }
        for (pid, child) in children where child.role == .housekeeper && child.stopRequestedAt == nil {
            children[pid]?.stopRequestedAt = now
            ProcessControl.send(SIGTERM, to: pid)
        }
    }
}
