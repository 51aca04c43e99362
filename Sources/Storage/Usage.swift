import Posix
import Postgres

/// One logged request of a key.
public struct UsageEntry: Sendable {
    public let at: Int64
    public let method: String?
    public let path: String?
    public let statusCode: Int?
    public let responseTimeMicroseconds: Int?
    public let remoteAddress: String?
}

/// Aggregates over a key's requests in a time range.
public struct UsageTotals: Sendable {
    public let total: Int
    public let byStatusClass: [String: Int]
    public let byRoute: [String: Int]
    public let p50Microseconds: Double?
    public let p95Microseconds: Double?
    public let p99Microseconds: Double?
    public let usedToday: Int
    public let usedThisMonth: Int
}

/// Reads of `api_key_usage` (filled by the housekeeper from the shared-memory ring).
public enum UsageQueries {
    public static func requestLog(keyID: String, limit: Int, cursor: String?, on db: PostgresConnection) throws(StoreError) -> Page<UsageEntry> {
        // The cursor is "µs.n": the time of the page's last row, and how many rows of that
        // exact microsecond were already returned. Two workers often record requests in the
        // same microsecond, and usage rows have no id, so rows sharing a time are put in a
        // fixed order by their other columns and counted (identical rows are interchangeable).
        var boundary: Int64?
        var seenAtBoundary = 0
        if let cursor {
            let parts = cursor.split(separator: ".", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let at = Int64(parts[0]), (0...latestCursorTime).contains(at) else { throw .invalidCursor }
            if parts.count == 2 {
                guard let seen = Int(parts[1]), (0...1_000_000).contains(seen) else { throw .invalidCursor }
                seenAtBoundary = seen
            }
            boundary = at
        }
        let rows = try storage {
            // The boundary goes into both halves as an expression of the parameter, so each
            // can use the (key_id, at) index as a range and prune partitions at run time.
            try db.query("""
                SELECT (extract(epoch FROM page.at) * 1000000)::bigint AS at, page.method, page.path,
                       page.status_code::int AS status_code, page.response_time_us, host(page.remote_addr) AS remote_addr
                FROM ((SELECT u.at, u.method, u.path, u.status_code, u.response_time_us, u.remote_addr
                       FROM api_key_usage u
                       WHERE u.key_id = \(keyID)::uuid
                         AND u.at = timestamptz 'epoch' + \(boundary)::bigint * interval '1 microsecond'
                       ORDER BY u.method, u.path, u.status_code, u.response_time_us, u.remote_addr
                       OFFSET \(seenAtBoundary))
                      UNION ALL
                      (SELECT u.at, u.method, u.path, u.status_code, u.response_time_us, u.remote_addr
                       FROM api_key_usage u
                       WHERE u.key_id = \(keyID)::uuid
                         AND (\(boundary)::bigint IS NULL
                              OR u.at < timestamptz 'epoch' + \(boundary)::bigint * interval '1 microsecond')
                       ORDER BY u.at DESC, u.method, u.path, u.status_code, u.response_time_us, u.remote_addr
                       LIMIT \(limit + 1))) page
                ORDER BY page.at DESC, page.method, page.path, page.status_code, page.response_time_us, page.remote_addr
                LIMIT \(limit + 1)
                """)
        }
        var items: [UsageEntry] = try storage {
            try rows.map { row in
                UsageEntry(at: try row.decode("at"), method: try row.decode("method", as: String?.self), path: try row.decode("path", as: String?.self),
                           statusCode: try row.decode("status_code", as: Int?.self),
                           responseTimeMicroseconds: try row.decode("response_time_us", as: Int?.self),
                           remoteAddress: try row.decode("remote_addr", as: String?.self))
            }
        }
        var next: String?
        if items.count > limit {
            items.removeLast()
            if let last = items.last {
                var seen = items.reversed().prefix { $0.at == last.at }.count
                if last.at == boundary { seen += seenAtBoundary }
                next = "\(last.at).\(seen)"
            }
        }
        return Page(items: items, nextCursor: next)
    }

    /// Requests of a key lineage (a key, its rotations and the keys it made through
    /// self-service) counted against the daily and monthly quota (UTC day and month so
    /// far), as the housekeeper has stored them.
    /// `now` (wall µs) is the caller's clock: the day and month counted are the ones the
    /// caller's rate table is in, even when the database's clock is a little off.
    public static func quotaUsage(lineageID: String, now: Int64, on db: PostgresConnection) throws(StoreError) -> (today: Int, month: Int) {
        let rows = try storage {
            try db.query("""
                WITH moment AS (SELECT ((timestamptz 'epoch' + \(now)::bigint * interval '1 microsecond') AT TIME ZONE 'UTC')::date AS day)
                SELECT coalesce(sum(q.requests) FILTER (WHERE q.day = moment.day), 0)::bigint AS today,
                       coalesce(sum(q.requests), 0)::bigint AS month
                FROM api_key_quota_usage q, moment
                WHERE q.key_id = \(lineageID)::uuid AND q.day >= date_trunc('month', moment.day)::date AND q.day <= moment.day
                """)
        }
        return try storage { (try rows.first?.decode("today", as: Int.self) ?? 0, try rows.first?.decode("month", as: Int.self) ?? 0) }
    }

    /// One snapshot for all four reads: a usage batch committing between them would make
    /// the total disagree with its breakdowns.
    /// `lineageID`: the key's lineage, whose quota counts the summary shows.
    public static func totals(keyID: String, lineageID: String, from: Int64, to: Int64, on db: PostgresConnection) throws(StoreError) -> UsageTotals {
        let (summary, classes, routes, today, month) = try storage {
            try db.transaction { db in
                try db.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                let summary = try db.query("""
                    SELECT count(*)::bigint AS total,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY response_time_us) AS p50,
                           percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_us) AS p95,
                           percentile_cont(0.99) WITHIN GROUP (ORDER BY response_time_us) AS p99
                    FROM api_key_usage
                    WHERE key_id = \(keyID)::uuid AND at >= to_timestamp(\(from)::bigint / 1000000.0) AND at < to_timestamp(\(to)::bigint / 1000000.0)
                    """)
                let classes = try db.query("""
                    SELECT (status_code / 100)::text || 'xx' AS class, count(*)::bigint AS n FROM api_key_usage
                    WHERE key_id = \(keyID)::uuid AND at >= to_timestamp(\(from)::bigint / 1000000.0) AND at < to_timestamp(\(to)::bigint / 1000000.0)
                      AND status_code IS NOT NULL
                    GROUP BY 1
                    """)
                let routes = try db.query("""
                    SELECT coalesce(route, 'unknown') AS route, count(*)::bigint AS n FROM api_key_usage
                    WHERE key_id = \(keyID)::uuid AND at >= to_timestamp(\(from)::bigint / 1000000.0) AND at < to_timestamp(\(to)::bigint / 1000000.0)
                    GROUP BY 1
                    """)
                let (today, month) = try quotaUsage(lineageID: lineageID, now: Clock.wallMicroseconds(), on: db)
                return (summary, classes, routes, today, month)
            }
        }
        return try storage {
            let row = summary.first
            var byClass: [String: Int] = [:]
            for entry in classes { byClass[try entry.decode("class")] = try entry.decode("n") }
            var byRoute: [String: Int] = [:]
            for entry in routes { byRoute[try entry.decode("route")] = try entry.decode("n") }
            return UsageTotals(
                total: try row?.decode("total", as: Int.self) ?? 0, byStatusClass: byClass, byRoute: byRoute,
                p50Microseconds: try row?.decode("p50", as: Double?.self), p95Microseconds: try row?.decode("p95", as: Double?.self),
                p99Microseconds: try row?.decode("p99", as: Double?.self),
                usedToday: today, usedThisMonth: month)
        }
    }
}
