import HTTP
import Posix
import Postgres
import Storage

/// Per-key request log and usage summary, in the API's shape.
struct RequestLogEntry: Encodable {
    let entry: UsageEntry

    enum CodingKeys: String, CodingKey { case at, method, path, statusCode, responseTimeMs, remoteAddr }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(time(entry.at), forKey: .at)
        try c.encode(entry.method, forKey: .method)
        try c.encode(entry.path, forKey: .path)
        try c.encode(entry.statusCode, forKey: .statusCode)
        try c.encode(entry.responseTimeMicroseconds.map { Double($0) / 1000 }, forKey: .responseTimeMs)
        try c.encode(entry.remoteAddress, forKey: .remoteAddr)
    }
}

struct UsageSummary: Encodable {
    struct Latency: Encodable {
        let p50: Double?, p95: Double?, p99: Double?

        enum CodingKeys: String, CodingKey { case p50, p95, p99 }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(p50, forKey: .p50)
            try c.encode(p95, forKey: .p95)
            try c.encode(p99, forKey: .p99)
        }
    }
    /// Used and remaining requests of the daily and monthly quota; null where the key has
    /// no quota (counting usage then costs a query for nothing on a hot route).
    struct Quota: JSONFields {
        let dailyUsed: Int?, dailyRemaining: Int?, monthlyUsed: Int?, monthlyRemaining: Int?

        var jsonFields: [JSONField] {
            [JSONField("daily_used", .integer(dailyUsed)), JSONField("daily_remaining", .integer(dailyRemaining)),
             JSONField("monthly_used", .integer(monthlyUsed)), JSONField("monthly_remaining", .integer(monthlyRemaining))]
        }
    }

    let keyId: String
    let from: String
    let to: String
    let total: Int
    let byStatusClass: [String: Int]
    let byRoute: [String: Int]
    let latencyMs: Latency
    let quota: Quota
}

/// Thin adapters from Storage's usage reads to the API bodies.
enum UsageQueries {
    static func requestLog(keyID: String, limit: Int, cursor: String?, on db: PostgresConnection) throws -> ListBody<RequestLogEntry> {
        let page = try Storage.UsageQueries.requestLog(keyID: keyID, limit: limit, cursor: cursor, on: db)
        return ListBody(items: page.items.map(RequestLogEntry.init(entry:)), nextCursor: page.nextCursor)
    }

    /// Quota used and remaining for `key`: this host's live counters when it holds them
    /// (the caller's own key just passed the limiter), else the stored counts (one query).
    static func quota(key: KeyRecord, context: AppContext) throws -> UsageSummary.Quota {
        guard key.limits.quotaDaily != nil || key.limits.quotaMonthly != nil else {
            return .init(dailyUsed: nil, dailyRemaining: nil, monthlyUsed: nil, monthlyRemaining: nil)
        }
        let today: Int, month: Int
        if let id = UUIDBytes.parse(key.lineageID), let live = context.rates?.quotaUsed(id, now: Clock.wallMicroseconds()) {
            (today, month) = live
        } else {
            (today, month) = try Storage.UsageQueries.quotaUsage(lineageID: key.lineageID, now: Clock.wallMicroseconds(),
                                                                 on: try context.requireDatabase())
        }
        return .init(dailyUsed: today, dailyRemaining: key.limits.quotaDaily.map { max(0, $0 - today) },
                     monthlyUsed: month, monthlyRemaining: key.limits.quotaMonthly.map { max(0, $0 - month) })
    }

    static func summary(key: KeyRecord, from: Int64, to: Int64, on db: PostgresConnection) throws -> UsageSummary {
        let totals = try Storage.UsageQueries.totals(keyID: key.id, lineageID: key.lineageID, from: from, to: to, on: db)
        func ms(_ micros: Double?) -> Double? { micros.map { ($0 / 1000 * 1000).rounded() / 1000 } }
        return UsageSummary(
            keyId: key.id, from: time(from), to: time(to), total: totals.total, byStatusClass: totals.byStatusClass,
            byRoute: totals.byRoute, latencyMs: .init(p50: ms(totals.p50Microseconds), p95: ms(totals.p95Microseconds), p99: ms(totals.p99Microseconds)),
            quota: .init(dailyUsed: totals.usedToday, dailyRemaining: key.limits.quotaDaily.map { max(0, $0 - totals.usedToday) },
                         monthlyUsed: totals.usedThisMonth, monthlyRemaining: key.limits.quotaMonthly.map { max(0, $0 - totals.usedThisMonth) }))
    }
}
