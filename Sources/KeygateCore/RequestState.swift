import HTTP
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
    /// Where a limited key stands, in the draft-standard and the widespread X- names.
    /// Only this adds them (no route sets them), so they are added, not replaced.
    static func addRateHeaders(_ decision: RateDecision, to headers: inout HTTPHeaders) {
        let limit = String(decision.limit), remaining = String(decision.remaining), reset = String(decision.resetSeconds)
        headers.add("RateLimit-Limit", limit)
        headers.add("RateLimit-Remaining", remaining)
        headers.add("RateLimit-Reset", reset)
        headers.add("X-RateLimit-Limit", limit)
        headers.add("X-RateLimit-Remaining", remaining)
        headers.add("X-RateLimit-Reset", reset)
    }
}
