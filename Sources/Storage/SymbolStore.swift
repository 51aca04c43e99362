import Postgres

/// A tracked symbol. Times are µs since the epoch.
public struct SymbolRecord: Sendable, Equatable {
    public let id: Int
    public let symbol: String
    public let assetClass: String
    public let active: Bool
    public let dateAdded: Int64
    public let lastBackfill: Int64?
    public let backfillStatus: String
    public let backfillError: String?
}

public struct SymbolFilter: Sendable {
    /// nil = all; true/false = only active / only removed.
    public var active: Bool?
    public var assetClass: String?
    public var backfillStatus: String?
    public init(active: Bool?, assetClass: String?, backfillStatus: String?) {
        self.active = active
        self.assetClass = assetClass
        self.backfillStatus = backfillStatus
    }
}

/// What an update asks for; nil leaves a field alone (`backfillError: .some(nil)` clears it).
public struct SymbolChanges: Sendable {
    public var active: Bool?
    public var assetClass: String?
    public var backfillStatus: String?
    public var backfillError: String??
    public init() {}
}

/// How adding a symbol went.
public enum SymbolAddition: Sendable {
    case added(SymbolRecord)
    case reactivated(SymbolRecord)
    case alreadyActive(SymbolRecord)
}

/// The market-data watchlist and its backfill state. Every change writes an audit row in
/// the same transaction.
public final class SymbolStore {
    let db: PostgresConnection

    public init(connection: PostgresConnection) {
        db = connection
    }

    static let columns = """
        id, symbol, asset_class, active, (extract(epoch FROM date_added) * 1000000)::bigint AS date_added,
        (extract(epoch FROM last_backfill) * 1000000)::bigint AS last_backfill, backfill_status, backfill_error
        """

    static func records(_ rows: PostgresRows) throws(StoreError) -> [SymbolRecord] {
        try storage {
            try rows.map { row in
                SymbolRecord(id: try row.decode("id"), symbol: try row.decode("symbol"), assetClass: try row.decode("asset_class"),
                             active: try row.decode("active"), dateAdded: try row.decode("date_added"),
                             lastBackfill: try row.decode("last_backfill", as: Int64?.self), backfillStatus: try row.decode("backfill_status"),
                             backfillError: try row.decode("backfill_error", as: String?.self))
            }
        }
    }

    public func get(_ symbol: String) throws(StoreError) -> SymbolRecord? {
        try Self.records(storage { try db.query("SELECT \(unsafeSQL: Self.columns) FROM tracked_symbols WHERE symbol = \(symbol)") }).first
    }

    /// Ordered by id (identities only grow), so a cursor never repeats a row. (A row whose
    /// transaction commits after that of a higher id already paged past is not seen.)
    public func list(_ filter: SymbolFilter, limit: Int, cursor: String?) throws(StoreError) -> Page<SymbolRecord> {
        var after: Int?
        if let cursor {
            guard let id = Int(cursor), id > 0 else { throw .invalidCursor }
            after = id
        }
        var items = try Self.records(storage {
            try db.query("""
                SELECT \(unsafeSQL: Self.columns) FROM tracked_symbols
                WHERE (\(filter.active)::boolean IS NULL OR active = \(filter.active)::boolean)
                  AND (\(filter.assetClass)::text IS NULL OR asset_class = \(filter.assetClass))
                  AND (\(filter.backfillStatus)::text IS NULL OR backfill_status = \(filter.backfillStatus))
                  AND (\(after)::bigint IS NULL OR id > \(after)::bigint)
                ORDER BY id LIMIT \(limit + 1)
                """)
        })
        var next: String?
        if items.count > limit {
            items.removeLast()
            next = items.last.map { String($0.id) }
        }
        return Page(items: items, nextCursor: next)
    }

    /// Adds a seed symbol unless the symbol is there already, active or removed (an operator's
    /// removal stands): with its audit row, in one transaction. True when it was added.
    public func seed(_ symbol: String, assetClass: String, by actor: Actor) throws(StoreError) -> Bool {
        try storage {
            try db.transaction { db -> Bool in
                let rows = try db.query("""
                    INSERT INTO tracked_symbols (symbol, asset_class) VALUES (\(symbol), \(assetClass))
                    ON CONFLICT (symbol) DO NOTHING
                    """)
                guard rows.affectedRows == 1 else { return false }
                try Audit.append(action: "symbol.added", targetType: "symbol", targetID: symbol, by: actor,
                                 details: ["asset_class": assetClass, "source": "bootstrap seed"], on: db)
                return true
            }
        }
    }

    /// Adds a symbol, or reactivates a removed one (keeping its id and history).
    public func add(_ symbol: String, assetClass: String, by actor: Actor) throws(StoreError) -> SymbolAddition {
        try storage {
            try db.transaction { db -> SymbolAddition in
                if let existing = try Self.records(storage { try db.query("SELECT \(unsafeSQL: Self.columns) FROM tracked_symbols WHERE symbol = \(symbol) FOR UPDATE") }).first {
                    if existing.active { return .alreadyActive(existing) }
                    let rows = try db.query("""
                        UPDATE tracked_symbols SET active = true, asset_class = \(assetClass) WHERE id = \(existing.id)
                        RETURNING \(unsafeSQL: Self.columns)
                        """)
                    guard let record = try Self.records(rows).first else { return .alreadyActive(existing) }
                    try Audit.append(action: "symbol.reactivated", targetType: "symbol", targetID: symbol, by: actor,
                                     details: ["asset_class": assetClass], on: db)
                    return .reactivated(record)
                }
                let rows = try db.query("""
                    INSERT INTO tracked_symbols (symbol, asset_class) VALUES (\(symbol), \(assetClass))
                    RETURNING \(unsafeSQL: Self.columns)
                    """)
                guard let record = try Self.records(rows).first else {
                    throw PostgresError(kind: .other, sqlState: nil, message: "INSERT returned no row")
                }
                try Audit.append(action: "symbol.added", targetType: "symbol", targetID: symbol, by: actor,
                                 details: ["asset_class": assetClass], on: db)
                return .added(record)
            }
        }
    }

    /// Applies `changes` under a row lock. `transition` decides whether a backfill status
    /// change is legal (nil = refused, with the reason). Finishing a backfill (in_progress →
    /// completed/failed) records a `backfill_history` row and `last_backfill`.
    public func update(_ symbol: String, _ changes: SymbolChanges, by actor: Actor,
                       transition: (String, String) -> String?) throws -> (SymbolRecord?, refusal: String?) {
        try storage {
            try db.transaction { db -> (SymbolRecord?, refusal: String?) in
                guard let before = try Self.records(storage { try db.query("SELECT \(unsafeSQL: Self.columns) FROM tracked_symbols WHERE symbol = \(symbol) FOR UPDATE") }).first else {
                    return (nil, nil)
                }
                let status = changes.backfillStatus ?? before.backfillStatus
                if status != before.backfillStatus, let refusal = transition(before.backfillStatus, status) {
                    return (before, refusal)
                }
                // An error describes a failed backfill. (The route checks this too, on the row
                // it read before this lock; a claim may have moved the symbol on since.)
                if case .some(.some) = changes.backfillError, status != "failed" {
                    return (before, "backfill_error may be set only on a failed symbol; it is \(status) now")
                }
                let finishing = before.backfillStatus == "in_progress" && (status == "completed" || status == "failed")
                var error: String? = changes.backfillError ?? before.backfillError
                if status == "completed" || status == "pending" || status == "in_progress" { error = changes.backfillError ?? nil }
                if finishing {
                    try db.query("""
                        INSERT INTO backfill_history (symbol_id, started_at, finished_at, outcome, error)
                        SELECT id, least(coalesce(backfill_started_at, now()), now()), now(), \(status), \(status == "failed" ? error : nil)
                        FROM tracked_symbols WHERE id = \(before.id)
                        """)
                }
                let rows = try db.query("""
                    UPDATE tracked_symbols SET
                        active = \(changes.active ?? before.active),
                        asset_class = \(changes.assetClass ?? before.assetClass),
                        backfill_status = \(status),
                        backfill_error = \(error),
                        backfill_started_at = CASE WHEN \(status) = 'in_progress' AND backfill_status <> 'in_progress' THEN now()
                                                   WHEN \(status) = 'in_progress' THEN backfill_started_at ELSE NULL END,
                        last_backfill = CASE WHEN \(finishing) THEN now() ELSE last_backfill END
                    WHERE id = \(before.id)
                    RETURNING \(unsafeSQL: Self.columns)
                    """)
                let after = try Self.records(rows).first
                let action: String
                if before.active && changes.active == false { action = "symbol.removed" }
                else if !before.active && changes.active == true { action = "symbol.reactivated" }
                else { action = "symbol.updated" }
                var details: [String: String] = [:]
                if let active = changes.active { details["active"] = String(active) }
                if let assetClass = changes.assetClass { details["asset_class"] = assetClass }
                if status != before.backfillStatus { details["backfill_status"] = "\(before.backfillStatus) -> \(status)" }
                try Audit.append(action: action, targetType: "symbol", targetID: symbol, by: actor, details: details, on: db)
                return (after, nil)
            }
        }
    }

    /// Atomically claims up to `limit` active symbols due for backfill: pending ones, failed
    /// or completed ones older than `interval`, and in-progress ones whose lease ran out.
    /// `FOR UPDATE SKIP LOCKED` lets concurrent schedulers claim disjoint sets.
    public func claim(limit: Int, assetClass: String?, intervalSeconds: Int, leaseSeconds: Int, by actor: Actor) throws(StoreError) -> [SymbolRecord] {
        try storage {
            try db.transaction { db -> [SymbolRecord] in
                let rows = try db.query("""
                    WITH due AS (
                        SELECT id FROM tracked_symbols
                        WHERE active
                          AND (\(assetClass)::text IS NULL OR asset_class = \(assetClass))
                          AND (backfill_status = 'pending'
                               OR (backfill_status IN ('completed', 'failed')
                                   AND (last_backfill IS NULL OR last_backfill < now() - make_interval(secs => \(intervalSeconds))))
                               OR (backfill_status = 'in_progress'
                                   AND (backfill_started_at IS NULL OR backfill_started_at < now() - make_interval(secs => \(leaseSeconds)))))
                        ORDER BY last_backfill NULLS FIRST, id
                        LIMIT \(limit)
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE tracked_symbols t SET backfill_status = 'in_progress', backfill_started_at = now(), backfill_error = NULL
                    FROM due WHERE t.id = due.id
                    RETURNING \(unsafeSQL: Self.columns.replacing("id, symbol,", with: "t.id, symbol,"))
                    """)
                let claimed = try Self.records(rows).sorted { $0.id < $1.id }
                for symbol in claimed {
                    try Audit.append(action: "symbol.claimed", targetType: "symbol", targetID: symbol.symbol, by: actor, details: [:], on: db)
                }
                return claimed
            }
        }
    }

    /// The backfill history of one symbol, newest first.
    public func history(symbolID: Int, limit: Int) throws(StoreError) -> [(startedAt: Int64, finishedAt: Int64?, outcome: String?, error: String?)] {
        let rows = try storage {
            try db.query("""
                SELECT (extract(epoch FROM started_at) * 1000000)::bigint AS started_at,
                       (extract(epoch FROM finished_at) * 1000000)::bigint AS finished_at, outcome, error
                FROM backfill_history WHERE symbol_id = \(symbolID) ORDER BY started_at DESC, id DESC LIMIT \(limit)
                """)
        }
        return try storage {
            try rows.map { row in
                (try row.decode("started_at", as: Int64.self), try row.decode("finished_at", as: Int64?.self),
                 try row.decode("outcome", as: String?.self), try row.decode("error", as: String?.self))
            }
        }
    }
}
