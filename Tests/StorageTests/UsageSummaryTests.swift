import Testing
@testable import Storage

@Suite("UsageWriter.Summary")
struct UsageSummaryTests {
    private func row(_ key: String, at: Int64, path: String, counted: Bool = true) -> UsageRow {
        UsageRow(keyID: key, at: at, method: "GET", route: "GET /x", path: path, status: 200, responseTimeMicroseconds: 10,
                 remoteAddress: nil, counted: counted)
    }

    @Test("per key: how many, the latest request and its endpoint; per key and UTC day: the counted ones")
    func sums() {
        let a = "00000000-0000-4000-8000-00000000000a", b = "00000000-0000-4000-8000-00000000000b"
        let midnight: Int64 = 1_795_305_600_000_000 // 2026-11-22T00:00:00Z
        let summary = UsageWriter.Summary([
            row(b, at: midnight - 1, path: "/late-on-the-21st"),
            row(a, at: midnight + 5, path: "/newest"),
            row(a, at: midnight - 5, path: "/older"),
            row(a, at: midnight + 1, path: "/uncounted", counted: false),
            row(b, at: midnight - 1, path: "/same-microsecond-later-in-batch"),
        ])
        #expect(summary.keys == [a, b])
        #expect(summary.counts == ["3", "2"])
        #expect(summary.lastTimes == ["2026-11-22T00:00:00.000005Z", "2026-11-21T23:59:59.999999Z"])
        #expect(summary.endpoints == ["GET /newest", "GET /same-microsecond-later-in-batch"])
        #expect(summary.quotaKeys == [a, a, b])
        #expect(summary.quotaDays == ["2026-11-21", "2026-11-22", "2026-11-21"])
        #expect(summary.quotaCounts == ["1", "1", "2"])
    }

    @Test("before 1970 the day still floors")
    func beforeEpoch() {
        let summary = UsageWriter.Summary([row("00000000-0000-4000-8000-00000000000a", at: -1, path: "/")])
        #expect(summary.quotaDays == ["1969-12-31"])
    }
}
