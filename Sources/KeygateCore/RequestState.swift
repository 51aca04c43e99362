import SharedMemory
import Storage

/// What the pool learned about the current request's key, for the response headers and
/// the usage record written after the response. One per worker, reset per request.
final class RequestState {
    /// The key the request identified (its use is recorded).
    private(set) var key: KeyRecord?
    private(set) var rate: RateDecision?
    /// Let through by the rate limiter (counts against quotas).
    private(set) var counted = false

    func reset() {
        key = nil
        rate = nil
        counted = false
    }

    func note(_ verdict: KeyVerdict) {
        key = verdict.identified
        rate = verdict.rate
        counted = verdict.counted
    }

    /// `RateLimit-*` (IETF draft) and the `X-RateLimit-*` twins most clients know; Reset is
    /// seconds from now in both.
    static func rateHeaders(_ decision: RateDecision) -> [(String, String)] {
        let limit = String(decision.limit), remaining = String(decision.remaining), reset = String(decision.resetSeconds)
        return [("RateLimit-Limit", limit), ("RateLimit-Remaining", remaining), ("RateLimit-Reset", reset),
                ("X-RateLimit-Limit", limit), ("X-RateLimit-Remaining", remaining), ("X-RateLimit-Reset", reset)]
    }
}
