import HTTP
import Storage

/// What a key may give a key it makes for its own user (`POST /api/v1/auth/keys`): never
/// more than it has itself. Scopes are bounded by `Scope.canGrant`; this bounds the rest.
/// Without it a `self` key on the free plan could make keys with no rate limit or quota,
/// no IP or path restriction and no expiry.
/// - Each limit is at most the caller's own and the user's plan's (nil: none), and is that
///   bound when the request leaves it out.
/// - A restricted caller's new key lies inside its restrictions: each network inside one
///   of its `allowed_ips`, each path under one of its `allowed_paths`; left out, the
///   caller's lists.
/// - An expiring caller's new key expires no later; left out, at the same moment.
/// - A `test` key makes `test` keys only; left out, the caller's environment.
/// Refusals are 403s naming the field, like the other escalation refusals.
enum SelfServiceBounds {
    static func limits(_ asked: KeyLimits, caller: KeyLimits, plan: KeyLimits) throws(Problem) -> KeyLimits {
        func bound(_ asked: Int?, _ own: Int?, _ planned: Int?, _ field: String) throws(Problem) -> Int? {
            let cap = [own, planned].compactMap { $0 }.min()
            guard let asked else { return cap }
            if let cap, asked > cap {
                throw refuse(field, "can be at most \(cap) here: a key made through self-service gets no more than the key making it, or its plan, allows")
            }
            return asked
        }
        return KeyLimits(
            rateLimitPerMinute: try bound(asked.rateLimitPerMinute, caller.rateLimitPerMinute, plan.rateLimitPerMinute, "rate_limit_per_minute"),
            rateLimitPerHour: try bound(asked.rateLimitPerHour, caller.rateLimitPerHour, plan.rateLimitPerHour, "rate_limit_per_hour"),
            burst: try bound(asked.burst, caller.burst, plan.burst, "burst"),
            quotaDaily: try bound(asked.quotaDaily, caller.quotaDaily, plan.quotaDaily, "quota_daily"),
            quotaMonthly: try bound(asked.quotaMonthly, caller.quotaMonthly, plan.quotaMonthly, "quota_monthly"))
    }

    static func ips(_ asked: [String], caller: [String]) throws(Problem) -> [String] {
        guard !caller.isEmpty else { return asked }
        guard !asked.isEmpty else { return caller }
        if let index = firstNetworkOutside(caller, of: asked) {
            throw refuse("allowed_ips[\(index)]", "must lie inside one of the allowed_ips of the key making it")
        }
        return asked
    }

    static func paths(_ asked: [String], caller: [String]) throws(Problem) -> [String] {
        guard !caller.isEmpty else { return asked }
        guard !asked.isEmpty else { return caller }
        if let index = firstPathOutside(caller, of: asked) {
            throw refuse("allowed_paths[\(index)]", "must lie under one of the allowed_paths of the key making it")
        }
        return asked
    }

    /// The index of the first of `networks` not inside one of `own`; nil when all are.
    private static func firstNetworkOutside(_ own: [String], of networks: [String]) -> Int? {
        let own = own.compactMap(IPNetwork.init)
        return networks.firstIndex { text in !(IPNetwork(text).map { network in own.contains { $0.contains(network) } } ?? false) }
    }

    /// The index of the first of `paths` not under one of `own`; nil when all are.
    private static func firstPathOutside(_ own: [String], of paths: [String]) -> Int? {
        paths.firstIndex { path in !own.contains { Authenticator.pathIsUnder(path, $0) } }
    }

    /// `asked` already validated (live or test), nil when left out.
    static func environment(_ asked: String?, caller: String) throws(Problem) -> String {
        guard let asked else { return caller }
        guard caller == "live" || asked == caller else { throw refuse("environment", "must be test: a test key makes test keys only") }
        return asked
    }

    /// µs since the epoch; nil is no expiry. `field` is the one the request gave it in.
    static func expiry(_ asked: Int64?, caller: Int64?, field: String) throws(Problem) -> Int64? {
        guard let caller else { return asked }
        guard let asked else { return caller }
        guard asked <= caller else { throw refuse(field, "must make the key expire no later than the key making it") }
        return asked
    }

    /// Rotating hands the caller a new key with `target`'s attributes, so a caller may
    /// rotate only a key no looser than itself: each of its limits set at most as high,
    /// inside its networks and paths, expiring no later, and a test key only test keys.
    /// (A restricted key must not turn into an unrestricted sibling's successor.)
    static func mayRotate(_ target: KeyRecord, by caller: KeyRecord) throws(Problem) {
        guard target.id != caller.id else { return }
        let refusal = Problem(.forbidden, detail: "A key can rotate only keys with no looser limits, networks, paths, expiry or environment than its own.")
        guard caller.environment == "live" || target.environment == caller.environment else { throw refusal }
        let pairs = [(target.limits.rateLimitPerMinute, caller.limits.rateLimitPerMinute), (target.limits.rateLimitPerHour, caller.limits.rateLimitPerHour),
                     (target.limits.burst, caller.limits.burst), (target.limits.quotaDaily, caller.limits.quotaDaily),
                     (target.limits.quotaMonthly, caller.limits.quotaMonthly)]
        for (theirs, own) in pairs {
            if let own { guard let theirs, theirs <= own else { throw refusal } }
        }
        if !caller.allowedIPs.isEmpty {
            guard !target.allowedIPs.isEmpty, firstNetworkOutside(caller.allowedIPs, of: target.allowedIPs) == nil else { throw refusal }
        }
        if !caller.allowedPaths.isEmpty {
            guard !target.allowedPaths.isEmpty, firstPathOutside(caller.allowedPaths, of: target.allowedPaths) == nil else { throw refusal }
        }
        if let own = caller.expiresAt { guard let theirs = target.expiresAt, theirs <= own else { throw refusal } }
    }

    private static func refuse(_ field: String, _ message: String) -> Problem {
        Problem(.forbidden, detail: "Field '\(field)' \(message).", field: field)
    }
}
