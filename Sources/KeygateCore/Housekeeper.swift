#if canImport(Glibc)
import Glibc
#endif
import Posix
import Postgres
import Prefork
import SharedMemory
import Storage

/// The housekeeper process (one per host, supervised by the master like a worker):
/// - drains the usage ring into `api_key_usage` in batches (`COPY`), with each key's
///   last-used time, endpoint and request count and the quota counts, one transaction
///   per batch;
/// - `LISTEN`s for key changes (on a direct connection: LISTEN is session state, which a
///   transaction-pooling PgBouncer does not keep) and drops those keys from this host's
///   cache, so a change made on another host takes effect here within moments; when that
///   connection was lost, notifications may have been missed, so it drops every entry;
/// - tells the workers whether the database is reachable, and keeps the usage partitions.
final class Housekeeper {
    static let channel = "keygate_key_changes"
    /// Records stored per statement.
    static let batchSize = 2_000

    private let configuration: Configuration
    private let host: HostState
    private let logger: Logger
    /// Usage writes, partitions, health checks (each in a transaction, so with the
    /// statement timeout and never silently retried).
    private let database: PostgresConnection
    /// LISTEN only. Kept apart so that no other statement can reconnect it behind the
    /// housekeeper's back and lose the subscription.
    private let listener: PostgresConnection
    private let reader: UsageRing.Reader
    /// Tells the master this process is making progress (its scoreboard slot).
    private let heartbeat: () -> Void
    /// `listener.connectionCount` when LISTEN was issued; nil until it was.
    private var listeningOn: Int?
    // Schedules run on the monotonic clock, which a wall-clock step cannot pause.
    private var lastHealthCheck: Int64 = 0
    private var lastListenerCheck: Int64 = 0
    private var lastPartitionCheck: Int64?
    private var reportedOutage = false
    private var reportedStoreFailure = false
    /// Whether a refused LISTEN (not an outage) was logged; once per spell.
    private var reportedListenFailure = false
    /// The ring's id as a UUID: the database records under it how far the ring is stored.
    private let ringID: String
    /// Whether the next drain must first ask the database how far the ring is stored, and
    /// free that much unread: at start (a predecessor may have died between a batch's
    /// COMMIT and freeing its cells), and after a batch whose COMMIT may have gone through
    /// unanswered (the connection broke). Storing such a batch again would count it twice.
    private var mustReconcile = true

    init(configuration: Configuration, host: HostState, database: PostgresConnection, listener: PostgresConnection,
         heartbeat: @escaping () -> Void = {}) {
        self.configuration = configuration
        self.host = host
        self.database = database
        self.listener = listener
        self.heartbeat = heartbeat
        logger = Logger(level: configuration.logLevel, component: "housekeeper")
        reader = UsageRing.Reader(host.usage)
        ringID = UUIDBytes.format(host.usage.id) ?? "00000000-0000-0000-0000-000000000000"
    }

    static func run(_ pool: WorkerContext, listenFD: Int32, configuration: Configuration, host: HostState) -> Int32 {
        let logger = Logger(level: configuration.logLevel, component: "housekeeper")
        // Same start as a worker; it never accepts on the listening socket.
        guard Worker.prepareChild(listenFD: listenFD, configuration: configuration, logger: logger) else { return 1 }
        let database: PostgresConnection, listener: PostgresConnection
        do {
            let direct = try configuration.connectionString(direct: true)
            database = PostgresConnection(connectionString: direct, statementTimeoutMilliseconds: configuration.statementTimeoutMilliseconds)
            listener = PostgresConnection(connectionString: direct, statementTimeoutMilliseconds: configuration.statementTimeoutMilliseconds)
        } catch {
            logger.error("cannot read the database settings", [("error", String(describing: error))])
            return 1
        }
        let housekeeper = Housekeeper(configuration: configuration, host: host, database: database, listener: listener,
                                      heartbeat: { pool.scoreboard.heartbeat(pool.slot, monotonic: Clock.monotonicMicroseconds()) })
        while !Signals.isStopRequested {
            housekeeper.heartbeat()
            housekeeper.cycle(now: Clock.wallMicroseconds())
        }
        // The workers have stopped (the master stops the housekeeper last): store what is left.
        housekeeper.finalDrain()
        return 0
    }

    /// One pass: store waiting usage, then wait up to 100 ms for key-change notifications.
    /// Notifications are also taken between the steps, so a slow batch does not hold back
    /// another host's revocation by the time of both steps.
    func cycle(now: Int64) {
        let stored = drain(now: now)
        heartbeat()
        // (Only while listening: reconnecting is left to the end of the cycle, once.)
        if listeningOn != nil, listeningOn == listener.connectionCount, listener.isConnected { listenForChanges(waitMilliseconds: 0) }
        maintain(now: now)
        heartbeat()
        listenForChanges(waitMilliseconds: stored == Self.batchSize ? 0 : 100)
    }

    /// Stores up to one batch from the ring; returns how many records it took.
    @discardableResult
    func drain(now: Int64) -> Int {
        if mustReconcile && !reconcile(now: now) { return 0 }
        let records = reader.peek(limit: Self.batchSize, now: now)
        guard !records.isEmpty else { return 0 }
        do {
            try store(records.compactMap(Self.row), through: reader.position + records.count)
            reader.commit()
            reportedStoreFailure = false
            databaseReachable(true, now: now)
            return records.count
        } catch {
            guard Self.isRefusedForContent(error) else {
                // The database, not the data: left in the ring, stored once it is back.
                storeFailed(error, now: now)
                Clock.pause(microseconds: 250_000)
                return 0
            }
            return storeOneByOne(records, now: now)
        }
    }

    /// A batch refused for what it holds: each record on its own, freed from the ring as
    /// soon as it is stored (so a later failure never stores it twice); only the record the
    /// database refuses is dropped. Stops at the first failure that is not about content.
    private func storeOneByOne(_ records: [UsageRecord], now: Int64) -> Int {
        var dropped = 0
        for (index, record) in records.enumerated() {
            heartbeat()
            if let row = Self.row(record) {
                do {
                    try store([row], through: reader.position + 1)
                } catch {
                    guard Self.isRefusedForContent(error) else {
                        storeFailed(error, now: now)
                        return index
                    }
                    dropped += 1
                    logger.error("usage record refused; dropping it", [("key_id", row.keyID), ("error", String(describing: error))])
                }
            }
            reader.commit(count: 1)
        }
        if dropped > 0 { logger.warning("usage batch stored record by record", [("records", String(records.count)), ("dropped", String(dropped))]) }
        return records.count
    }

    /// One batch in one transaction: all or nothing, under the statement timeout, and never
    /// retried behind our back (a retry after a lost reply could store it twice). The
    /// transaction also records `through`, the ring position the batch brings it to.
    private func store(_ rows: [UsageRow], through: Int) throws(StoreError) {
        let progress = UsageWriter.Progress(ringID: ringID, from: reader.position, through: through)
        try storage { try database.transaction { db in try UsageWriter.write(rows, progress: progress, on: db) } }
    }

    /// Whether the database refused these rows for their content (a value out of range, a
    /// constraint), which retrying cannot fix. Anything else (unreachable, read-only after a
    /// failover, disk full, a lock, a timeout) is the database's state: retry later.
    static func isRefusedForContent(_ error: StoreError) -> Bool {
        guard case .database(let failure) = error else { return false }
        switch failure.kind {
        case .invalidInput, .constraintViolation, .foreignKeyViolation, .uniqueViolation: return true
        default: return false
        }
    }

    /// Asked to stop: stores what the ring held at that moment, trying for up to 5 s (the
    /// database may be briefly away; a cell a killed worker claimed is skipped after the
    /// ring's stall timeout), then says what it could not store. On a reload the new
    /// workers keep appending and the next housekeeper stores the rest, so it does not
    /// chase them; on a full stop the workers are gone already, and the master keeps a
    /// ring that still holds records for the next start.
    func finalDrain() {
        let deadline = Clock.monotonicMicroseconds() + 5_000_000
        let target = reader.position + host.usage.statistics.pending
        while reader.position < target && Clock.monotonicMicroseconds() < deadline {
            heartbeat()
            if drain(now: Clock.wallMicroseconds()) == 0 { Clock.pause(microseconds: 50_000) }
        }
        let left = target - reader.position
        if left > 0 {
            logger.error("usage records not stored before this housekeeper stopped (the next housekeeper stores them: after a reload, or at the next start)",
                         [("records", String(left))])
        }
    }

    /// A batch the database did not take for a reason other than its content. Only an
    /// unreachable database marks the host's database as down (which sends uncached keys
    /// and quota loads to 503): a timeout, a lock or a deadlock on one batch says nothing
    /// about the workers' queries.
    private func storeFailed(_ error: StoreError, now: Int64) {
        // Whatever failed, ask the database how far the ring is stored before the next try:
        // a COMMIT may have gone through unanswered, or another transaction (a killed
        // predecessor's, still committing) may have stored part of this batch (`.conflict`).
        mustReconcile = true
        if case .database(let failure) = error, failure.isUnreachable {
            databaseReachable(false, now: now, error: error)
        } else if !reportedStoreFailure {
            reportedStoreFailure = true // once per spell, not every 250 ms
            logger.warning("usage batch not stored; retrying", [("error", String(describing: error))])
        }
    }

    /// Frees, unread, the records the database says this ring has stored already. False
    /// when the database cannot say (the drain waits).
    private func reconcile(now: Int64) -> Bool {
        do throws(StoreError) {
            let ringID = self.ringID
            let through = try storage { try database.transaction { db in try UsageWriter.storedThrough(ringID: ringID, on: db) } }
            let freed = reader.markStored(through: through)
            if freed > 0 {
                logger.warning("usage already stored by an earlier attempt; freed, not stored again", [("records", String(freed))])
            }
            mustReconcile = false
            return true
        } catch {
            storeFailed(error, now: now)
            Clock.pause(microseconds: 250_000)
            return false
        }
    }

    /// A ring record as a database row; nil for one that cannot be (a damaged record).
    static func row(_ record: UsageRecord) -> UsageRow? {
        guard let keyID = UUIDBytes.format(record.keyID), record.keyID != [UInt8](repeating: 0, count: 16),
              (100...599).contains(record.status) else { return nil }
        func clean(_ text: String) -> String { text.contains("\0") ? text.replacing("\0", with: "") : text }
        let address = IPNetwork.singleAddress(record.remoteAddress)
        return UsageRow(keyID: keyID, at: record.at, method: clean(record.method), route: clean(record.route), path: clean(record.path),
                        status: record.status, responseTimeMicroseconds: min(record.durationMicroseconds, Int(Int32.max)), remoteAddress: address,
                        counted: record.counted)
    }

    // MARK: Key changes

    private func listenForChanges(waitMilliseconds: Int32) {
        do throws(PostgresError) {
            // Not listening yet, or the connection was replaced (its LISTEN went with it).
            if listeningOn == nil || listeningOn != listener.connectionCount || !listener.isConnected {
                try listener.listen(Self.channel)
                // Whatever changed while nobody listened is unknown: start the cache afresh.
                host.keyCache?.removeAll()
                listeningOn = listener.connectionCount
                if reportedListenFailure {
                    reportedListenFailure = false
                    logger.info("listening for key changes again", [("channel", Self.channel)])
                } else {
                    logger.debug("listening for key changes", [("channel", Self.channel)])
                }
            }
            let notices = try listener.notifications(timeoutMilliseconds: waitMilliseconds)
            guard listeningOn == listener.connectionCount else { return } // reconnected while waiting: LISTEN again first
            for notice in notices where notice.channel == Self.channel {
                if let hash = HexBytes.decode(notice.payload), hash.count == 32 { host.keyCache?.invalidate(hash) }
            }
        } catch {
            listeningOn = nil
            if error.isUnreachable {
                databaseReachable(false, now: Clock.wallMicroseconds(), error: error)
            } else if !reportedListenFailure {
                // A server that answers but refuses LISTEN (a hot standby: a demoted primary)
                // is no outage: keys still read from it. Changes made elsewhere then reach
                // this host's cache only as its entries expire.
                reportedListenFailure = true
                logger.warning("cannot listen for key changes; other hosts' changes reach this cache only within key_cache_ttl",
                               [("error", error.description)])
            }
            Clock.pause(microseconds: 250_000)
        }
    }

    // MARK: Schedule

    private func maintain(now: Int64) {
        let tick = Clock.monotonicMicroseconds()
        if tick - lastHealthCheck >= 1_000_000 {
            lastHealthCheck = tick
            do {
                try database.transaction { db in try db.query("SELECT 1") }
                databaseReachable(true, now: now)
            } catch {
                databaseReachable(false, now: now, error: error)
            }
        }
        // A connection dropped without a word (a NAT timeout) never wakes the LISTEN poll:
        // a statement on it now and then finds out, and the reconnect is noticed by its count.
        if tick - lastListenerCheck >= 10_000_000, listeningOn != nil {
            lastListenerCheck = tick
            do { try listener.query("SELECT 1") } catch { listeningOn = nil }
        }
        // Hourly, and first a minute after start (not at once: a restart loop must not run
        // it over and over).
        if lastPartitionCheck == nil { lastPartitionCheck = tick - 3_540_000_000 }
        if let last = lastPartitionCheck, tick - last >= 3_600_000_000, !reportedOutage {
            lastPartitionCheck = tick
            do {
                let retention = configuration.usageRetentionDays
                let dropped = try database.transaction { db in try UsageWriter.maintainPartitions(retentionDays: retention, on: db) }
                if dropped > 0 { logger.info("dropped old usage partitions", [("partitions", String(dropped))]) }
            } catch {
                lastPartitionCheck = tick - 3_540_000_000 // retry in a minute
                logger.warning("cannot maintain usage partitions", [("error", String(describing: error))])
            }
        }
    }

    private func databaseReachable(_ reachable: Bool, now: Int64, error: (any Error)? = nil) {
        host.keyCache?.setDatabaseReachable(reachable, now: now)
        if reachable && reportedOutage {
            reportedOutage = false
            logger.info("database reachable again")
        } else if !reachable && !reportedOutage {
            reportedOutage = true
            logger.warning("database unreachable; usage waits in the ring", [("error", error.map { String(describing: $0) } ?? "")])
        }
    }
}
