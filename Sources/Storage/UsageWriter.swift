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
/// `last_used_endpoint` and `request_count`, and the per-day quota counts, in one
/// statement (so one round trip and all or nothing).
public enum UsageWriter {
    public static func write(_ rows: [UsageRow], on db: PostgresConnection) throws(StoreError) {
        guard !rows.isEmpty else { return }
        let keyIDs = rows.map(\.keyID)
        let times = rows.map { String($0.at) }
        let methods = rows.map(\.method)
        let routes = rows.map(\.route)
        let paths = rows.map(\.path)
        let statuses = rows.map { String($0.status) }
        let durations = rows.map { String($0.responseTimeMicroseconds) }
        let addresses = rows.map { $0.remoteAddress ?? "" }
        let counted = rows.map { $0.counted ? "t" : "f" }
        try storage {
            try db.query("""
                WITH batch AS (
                    SELECT * FROM unnest(\(keyIDs)::uuid[], \(times)::bigint[], \(methods)::text[], \(routes)::text[],
                                         \(paths)::text[], \(statuses)::int[], \(durations)::int[], \(addresses)::text[],
                                         \(counted)::bool[])
                        AS b(key_id, at_us, method, route, path, status, duration, remote, counted)
                ), stored AS (
                    INSERT INTO api_key_usage (key_id, at, method, route, path, status_code, response_time_us, remote_addr)
                    SELECT key_id, to_timestamp(at_us / 1000000.0), method, route, path, status, duration, nullif(remote, '')::inet
                    FROM batch
                ), used AS (
                    UPDATE api_keys k
                    SET request_count = k.request_count + u.n,
                        last_used_at = greatest(k.last_used_at, u.last_at),
                        last_used_endpoint = CASE WHEN k.last_used_at IS NULL OR u.last_at >= k.last_used_at
                                                  THEN u.endpoint ELSE k.last_used_endpoint END
                    FROM (SELECT key_id, count(*) AS n, to_timestamp(max(at_us) / 1000000.0) AS last_at,
                                 (array_agg(method || ' ' || path ORDER BY at_us DESC))[1] AS endpoint
                          FROM batch GROUP BY key_id) u
                    WHERE k.id = u.key_id
                )
                INSERT INTO api_key_quota_usage (key_id, day, requests)
                SELECT key_id, (to_timestamp(at_us / 1000000.0) AT TIME ZONE 'UTC')::date, count(*)
                FROM batch WHERE counted GROUP BY 1, 2
                ON CONFLICT (key_id, day) DO UPDATE SET requests = api_key_quota_usage.requests + excluded.requests
                """)
        }
    }

    /// Creates this and next month's usage partitions; drops those wholly older than
    /// `retentionDays` (0 = keep everything). Returns the partitions dropped.
    public static func maintainPartitions(retentionDays: Int, on db: PostgresConnection) throws(StoreError) -> Int {
        try storage {
            try db.query("SELECT keygate_ensure_usage_partitions(2)")
            guard retentionDays > 0 else { return 0 }
            let rows = try db.query("SELECT keygate_drop_usage_partitions_before(now() - make_interval(days => \(retentionDays))) AS dropped")
            return try rows.first?.decode("dropped", as: Int?.self) ?? 0
        }
    }
}
