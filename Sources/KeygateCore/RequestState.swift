import SharedMemory
import Storage

/// What the pool learned about the current request's key, for the response headers and
/// the usage record written after the response. One per worker, reset per request.
final class RequestState {
    var key: KeyRecord?
    var keyIDBytes: [UInt8]?
    var rate: RateDecision?
    /// Let through by the rate limiter (counts against quotas).
    var counted = false

    func reset() {
        key = nil
        keyIDBytes = nil
        rate = nil
        counted = false
    }

    struct Snapshot {
        let key: KeyRecord?, keyIDBytes: [UInt8]?, rate: RateDecision?, counted: Bool
    }

    func snapshot() -> Snapshot { Snapshot(key: key, keyIDBytes: keyIDBytes, rate: rate, counted: counted) }

    func restore(_ snapshot: Snapshot) {
        key = snapshot.key
        keyIDBytes = snapshot.keyIDBytes
        rate = snapshot.rate
        counted = snapshot.counted
    }

    /// `RateLimit-*` (IETF draft) and the `X-RateLimit-*` twins most clients know; Reset is
    /// seconds from now in both.
    static func rateHeaders(_ decision: RateDecision) -> [(String, String)] {
        let limit = String(decision.limit), remaining = String(decision.remaining), reset = String(decision.resetSeconds)
        return [("RateLimit-Limit", limit), ("RateLimit-Remaining", remaining), ("RateLimit-Reset", reset),
                ("X-RateLimit-Limit", limit), ("X-RateLimit-Remaining", remaining), ("X-RateLimit-Reset", reset)]
    }
}
