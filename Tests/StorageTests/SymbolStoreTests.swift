import Testing
import Postgres
@testable import Storage

@Suite("Tracked symbols against a real server", .serialized,
       .enabled(if: adminURL != nil || isCI, "KG_TEST_DIRECT_DATABASE_URL is not set (run through scripts/test)"))
struct SymbolStoreTests {
    @Test("an error is stored only on a failed symbol, judged on the row under its lock")
    func backfillErrorOnlyWhenFailed() throws {
        try withMigratedDatabase { db in
            let store = SymbolStore(connection: db)
            guard case .added = try store.add("AAPL", assetClass: "stock", by: .operatorOnHost) else {
                Issue.record("AAPL was not added")
                return
            }
            func update(_ status: String?, error: String??) throws -> (SymbolRecord?, refusal: String?) {
                var changes = SymbolChanges()
                changes.backfillStatus = status
                changes.backfillError = error
                return try store.update("AAPL", changes, by: .operatorOnHost, transition: { _, _ in nil })
            }
            // Claimed meanwhile: the caller saw it failed, the row is in progress now.
            _ = try update("in_progress", error: nil)
            let (unchanged, refusal) = try update(nil, error: .some("vendor 503"))
            #expect(refusal?.contains("in_progress") == true)
            #expect(unchanged?.backfillError == nil)
            #expect(try store.get("AAPL")?.backfillError == nil)
            // Failing with an error is fine; completing clears it.
            let (failed, none) = try update("failed", error: .some("vendor 503"))
            #expect(none == nil && failed?.backfillError == "vendor 503")
            _ = try update("in_progress", error: nil)
            let (done, _) = try update("completed", error: nil)
            #expect(done?.backfillStatus == "completed" && done?.backfillError == nil)
        }
    }
}
