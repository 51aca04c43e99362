import Testing
import Postgres
@testable import Storage

@Suite("Usage request log against a real server", .serialized,
       .enabled(if: adminURL != nil || isCI, "KG_TEST_DIRECT_DATABASE_URL is not set (run through scripts/test)"))
struct UsageQueriesTests {
    @Test("paging returns every request exactly once, also when many share one microsecond")
    func pagingWithTies() throws {
        try withMigratedDatabase { db in
            let key = "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
            let base: Int64 = 1_795_262_400_000_000
            // 9 requests in one microsecond (two workers finishing together, and more),
            // two identical ones among them, around requests at distinct times.
            var rows: [UsageRow] = []
            for offset in [9, 8] { rows.append(row(key, at: base + Int64(offset), path: "/a\(offset)", status: 200)) }
            for index in 0..<5 { rows.append(row(key, at: base + 5, path: "/tie\(index)", status: 200 + index)) }
            rows.append(row(key, at: base + 5, path: "/same", status: 404))
            rows.append(row(key, at: base + 5, path: "/same", status: 404))
            // Same but the address, whose text and inet orders differ (.10 < .9 as text).
            rows.append(row(key, at: base + 5, path: "/addr", status: 200, from: "10.0.0.9"))
            rows.append(row(key, at: base + 5, path: "/addr", status: 200, from: "10.0.0.10"))
            for offset in [3, 2, 1] { rows.append(row(key, at: base + Int64(offset), path: "/b\(offset)", status: 200)) }
            try UsageWriter.write(rows, on: db)

            for limit in [1, 2, 3, 4, 7, 20] {
                var seen: [String] = []
                var cursor: String?
                var pages = 0
                repeat {
                    let page = try UsageQueries.requestLog(keyID: key, limit: limit, cursor: cursor, on: db)
                    seen += page.items.map { "\($0.at - base) \($0.path ?? "") \($0.statusCode ?? 0) \($0.remoteAddress ?? "")" }
                    cursor = page.nextCursor
                    pages += 1
                } while cursor != nil && pages < 50
                #expect(seen.count == rows.count, "limit \(limit)")
                #expect(seen.sorted() == rows.map { "\($0.at - base) \($0.path) \($0.status) \($0.remoteAddress ?? "")" }.sorted(), "limit \(limit)")
                #expect(seen.map { Int($0.split(separator: " ")[0]) ?? 0 } == seen.map { Int($0.split(separator: " ")[0]) ?? 0 }.sorted(by: >))
            }
            #expect(throws: StoreError.self) { try UsageQueries.requestLog(keyID: key, limit: 2, cursor: "5.x", on: db) }
            // The same statement stored the quota counts: all 14 on that UTC day.
            let counted = try db.query("SELECT day::text AS day, requests FROM api_key_quota_usage WHERE key_id = \(key)::uuid")
            #expect(try counted.map { "\(try $0.decode("day", as: String.self)) \(try $0.decode("requests", as: Int.self))" } == ["2026-11-21 14"])
        }
    }

    @Test("a batch records in its own transaction how far its ring is stored, and is refused if another stored part of it")
    func ringProgress() throws {
        try withMigratedDatabase { db in
            let ring = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", other = "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
            let key = "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
            #expect(try UsageWriter.storedThrough(ringID: ring, on: db) == 0)
            try db.transaction { db in
                try UsageWriter.write([row(key, at: 1_795_262_400_000_000, path: "/a", status: 200)],
                                      progress: UsageWriter.Progress(ringID: ring, from: 0, through: 7), on: db)
            }
            #expect(try UsageWriter.storedThrough(ringID: ring, on: db) == 7)
            #expect(try UsageWriter.storedThrough(ringID: other, on: db) == 0)
            // A batch rolled back records nothing.
            _ = try? db.transaction { db in
                try UsageWriter.write([row(key, at: 1_795_262_400_000_001, path: "/b", status: 200)],
                                      progress: UsageWriter.Progress(ringID: ring, from: 7, through: 9), on: db)
                throw StoreError.invalidCursor
            }
            #expect(try UsageWriter.storedThrough(ringID: ring, on: db) == 7)
            // A batch from 3 when 7 is stored already (a predecessor's transaction got there
            // first): refused, so the caller rolls back instead of storing 3-6 again.
            let overlap = #expect(throws: StoreError.self) {
                try db.transaction { db in
                    try UsageWriter.write([self.row(key, at: 1_795_262_400_000_002, path: "/c", status: 200)],
                                          progress: UsageWriter.Progress(ringID: ring, from: 3, through: 9), on: db)
                }
            }
            if case .conflict = overlap {} else { Issue.record("expected a conflict, got \(String(describing: overlap))") }
            #expect(try UsageWriter.storedThrough(ringID: ring, on: db) == 7)
            // From where it stands (or beyond, after cells skipped as lost): accepted.
            try UsageWriter.write([], progress: UsageWriter.Progress(ringID: ring, from: 9, through: 12), on: db)
            #expect(try UsageWriter.storedThrough(ringID: ring, on: db) == 12)
            // Rings gone for 30 days are forgotten with the partition maintenance.
            try db.query("UPDATE usage_ring_progress SET updated_at = now() - interval '31 days' WHERE ring_id = \(ring)::uuid")
            _ = try UsageWriter.maintainPartitions(retentionDays: 0, on: db)
            #expect(try UsageWriter.storedThrough(ringID: ring, on: db) == 0)
            let count = try db.query("SELECT count(*) AS n FROM api_key_usage WHERE key_id = \(key)::uuid").first?.decode("n", as: Int.self)
            #expect(count == 1)
        }
    }

    private func row(_ key: String, at: Int64, path: String, status: Int, from address: String = "192.0.2.1") -> UsageRow {
        UsageRow(keyID: key, at: at, method: "GET", route: "GET /x", path: path, status: status, responseTimeMicroseconds: 100,
                 remoteAddress: address, counted: true)
    }
}
