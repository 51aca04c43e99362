import Posix
import Postgres

/// One request to store in `api_key_usage` (the housekeeper's batches from the ring).
public struct UsageRow: Sendable, Equatable {
    public let keyID: String
    public let at: Int64
    public let method: String
    public let route: String
    public let path: String
    public let status: Int
    public let responseTimeMicroseconds: Int
    /// A valid IP address, or nil.
    public let remoteAddress: String?
    /// Counts against the key's quotas.
    public let counted: Bool

    public init(keyID: String, at: Int64, method: String, route: String, path: String, status: Int,
                responseTimeMicroseconds: Int, remoteAddress: String?, counted: Bool) {
        self.keyID = keyID
        self.at = at
        self.method = method
        self.route = route
        self.path = path
        self.status = status
        self.responseTimeMicroseconds = responseTimeMicroseconds
        self.remoteAddress = remoteAddress
        self.counted = counted
    }
}

/// Stores usage batches: the request rows, each key's `last_used_at`,
/// `last_used_endpoint` and `request_count`, and the per-day quota counts. Run inside one
/// transaction (all or nothing).
///
/// The rows go in with `COPY` (PostgreSQL's cheapest way in: no arrays to parse, no
/// expressions per row), and what is per key or per key and day is summed here, so the
/// one statement after it touches a row per key rather than sorting and grouping the
/// batch. Storing usage is the largest cost of a cached key check after the request
/// itself (docs/benchmarks.md).
public enum UsageWriter {
    /// Where a batch came from: the ring's id and the positions of its first record and
    /// just past its last. Recorded in the batch's transaction, so whether a batch was
    /// stored can be asked afterwards (see migration 0007).
    public struct Progress: Sendable, Equatable {
        /// The ring's id as a UUID.
        public let ringID: String
        public let from: Int
        public let through: Int
        public init(ringID: String, from: Int, through: Int) {
            self.ringID = ringID
            self.from = from
            self.through = through
        }
    }

    public static func write(_ rows: [UsageRow], progress: Progress? = nil, on db: PostgresConnection) throws(StoreError) {
        if let progress { try record(progress, on: db) }
        guard !rows.isEmpty else { return }
        let summary = Summary(rows)
        try storage {
            var data = PostgresCopyData(capacity: rows.count * 160)
            for row in rows {
                data.append(row.keyID)
                data.append(Timestamp.rfc3339(microseconds: row.at))
                data.append(row.method)
                data.append(row.route)
                data.append(row.path)
                data.append(row.status)
                data.append(row.responseTimeMicroseconds)
                if let address = row.remoteAddress { data.append(address) } else { data.appendNull() }
                data.endRow()
            }
            try db.copy(into: "api_key_usage",
                        columns: ["key_id", "at", "method", "route", "path", "status_code", "response_time_us", "remote_addr"],
                        data: data)
            try db.query("""
                WITH used AS (
                    UPDATE api_keys k
                    SET request_count = k.request_count + u.n,
                        last_used_at = greatest(k.last_used_at, u.last_at),
                        last_used_endpoint = CASE WHEN k.last_used_at IS NULL OR u.last_at >= k.last_used_at
                                                  THEN u.endpoint ELSE k.last_used_endpoint END
                    FROM unnest(\(summary.keys)::uuid[], \(summary.counts)::bigint[], \(summary.lastTimes)::timestamptz[],
                                \(summary.endpoints)::text[]) AS u(key_id, n, last_at, endpoint)
                    WHERE k.id = u.key_id
                )
                -- Counted per lineage (a key and its rotations); a deleted key's under its own id.
                INSERT INTO api_key_quota_usage (key_id, day, requests)
                SELECT coalesce(k.lineage_id, q.key_id), q.day, sum(q.n)
                FROM unnest(\(summary.quotaKeys)::uuid[], \(summary.quotaDays)::date[], \(summary.quotaCounts)::bigint[])
                     AS q(key_id, day, n)
                LEFT JOIN api_keys k ON k.id = q.key_id
                GROUP BY 1, 2
                ORDER BY 1, 2 -- rows locked in one order on every host: no deadlock between two batches
                ON CONFLICT (key_id, day) DO UPDATE SET requests = api_key_quota_usage.requests + excluded.requests
                """)
        }
    }

    /// A batch summed per key (requests, the latest request and its endpoint) and per key
    /// and UTC day of the requests that count against quotas; as parallel text arrays.
    struct Summary {
        var keys: [String] = [], counts: [String] = [], lastTimes: [String] = [], endpoints: [String] = []
        var quotaKeys: [String] = [], quotaDays: [String] = [], quotaCounts: [String] = []

        init(_ rows: [UsageRow]) {
            var perKey: [String: (count: Int, last: UsageRow)] = [:]
            var perDay: [String: [Int64: Int]] = [:]
            for row in rows {
                if let seen = perKey[row.keyID] {
                    perKey[row.keyID] = (seen.count + 1, row.at >= seen.last.at ? row : seen.last)
                } else {
                    perKey[row.keyID] = (1, row)
                }
                if row.counted {
                    // Floor division: the UTC day a microsecond timestamp falls on.
                    let day = row.at >= 0 ? row.at / 86_400_000_000 : (row.at + 1) / 86_400_000_000 - 1
                    perDay[row.keyID, default: [:]][day, default: 0] += 1
                }
            }
            for (key, entry) in perKey.sorted(by: { $0.key < $1.key }) {
                keys.append(key)
                counts.append(String(entry.count))
                lastTimes.append(Timestamp.rfc3339(microseconds: entry.last.at))
                endpoints.append(entry.last.method + " " + entry.last.path)
            }
            for (key, days) in perDay.sorted(by: { $0.key < $1.key }) {
                for (day, count) in days.sorted(by: { $0.key < $1.key }) {
                    quotaKeys.append(key)
                    quotaDays.append(String(Timestamp.rfc3339(microseconds: day * 86_400_000_000, fractionDigits: 0).prefix(10)))
                    quotaCounts.append(String(count))
                }
            }
        }
    }

    /// Moves the ring's stored position from `progress.from` to `progress.through`, or
    /// refuses (`.conflict`, the caller rolls back) when the position is already past
    /// `from`: another transaction stored part of this batch (a killed predecessor's,
    /// committed while this one ran; under READ COMMITTED the condition is checked again
    /// once that transaction's row lock is released).
    static func record(_ progress: Progress, on db: PostgresConnection) throws(StoreError) {
        let rows = try storage {
            try db.query("""
                INSERT INTO usage_ring_progress (ring_id, stored_through) VALUES (\(progress.ringID)::uuid, \(progress.through))
                ON CONFLICT (ring_id) DO UPDATE SET stored_through = excluded.stored_through, updated_at = now()
                WHERE usage_ring_progress.stored_through <= \(progress.from)
                """)
        }
        guard rows.affectedRows == 1 else { throw .conflict("part of this usage batch was stored by another transaction") }
    }

    /// The ring position up to which the ring `ringID` has been stored; 0 when never.
    public static func storedThrough(ringID: String, on db: PostgresConnection) throws(StoreError) -> Int {
        try storage {
            let rows = try db.query("SELECT stored_through FROM usage_ring_progress WHERE ring_id = \(ringID)::uuid")
            return try rows.first?.decode("stored_through", as: Int.self) ?? 0
        }
    }

    /// Creates this and next month's usage partitions; drops those wholly older than
    /// `retentionDays` (0 = keep everything), and forgets rings gone for 30 days. Returns
    /// the partitions dropped.
    public static func maintainPartitions(retentionDays: Int, on db: PostgresConnection) throws(StoreError) -> Int {
        try storage {
            try db.query("SELECT keygate_ensure_usage_partitions(2)")
            try db.query("DELETE FROM usage_ring_progress WHERE updated_at < now() - interval '30 days'")
            guard retentionDays > 0 else { return 0 }
            let rows = try db.query("SELECT keygate_drop_usage_partitions_before(now() - make_interval(days => \(retentionDays))) AS dropped")
            return try rows.first?.decode("dropped", as: Int?.self) ?? 0
        }
    }
}
