import Posix

/// Prometheus text exposition of the scoreboard's counters.
enum MetricsRenderer {
    static func render(context: AppContext) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples {
                out += sample.labels.isEmpty ? "\(name) \(sample.value)\n" : "\(name){\(sample.labels)} \(sample.value)\n"
            }
        }
        guard let board = context.pool.scoreboard else { return out }
        let requests = board.requestCounts().map { entry -> (labels: String, value: String) in
            let route = entry.routeIndex.flatMap { $0 < context.routeNames.count ? context.routeNames[$0] : nil } ?? "unmatched"
            return ("route=\"\(route)\",status=\"\(entry.status)\"", String(entry.count))
        }
        metric("keygate_requests_total", "counter", "Requests answered, by route and status.", requests)
        metric("keygate_worker_restarts_total", "counter", "Workers replaced, by reason.", [
            ("reason=\"crash\"", String(board.crashRestarts)),
            ("reason=\"recycle\"", String(board.recycles)),
            ("reason=\"timeout\"", String(board.timeoutKills)),
        ])
        metric("keygate_reloads_total", "counter", "Configuration reloads (SIGHUP).", [("", String(board.reloads))])
        let uptime = Double(Clock.wallMicroseconds() - board.startedAtWall) / 1_000_000
        metric("keygate_uptime_seconds", "gauge", "Seconds since the master started.", [("", String(uptime))])
        if let cache = context.host?.keyCache?.statistics {
            metric("keygate_key_cache_lookups_total", "counter", "Key cache lookups by result.", [
                ("result=\"hit\"", String(cache.hits)), ("result=\"miss\"", String(cache.misses)),
                ("result=\"unknown\"", String(cache.unknownHits)),
            ])
            metric("keygate_key_cache_entries", "gauge", "Keys in the cache.", [("", String(cache.entries))])
            metric("keygate_key_cache_invalidations_total", "counter", "Cache entries dropped because their key changed.",
                   [("", String(cache.invalidations))])
            metric("keygate_key_cache_evictions_total", "counter", "Entries replaced to make room.", [("", String(cache.evictions))])
        }
        if let ring = context.host?.usage.statistics {
            metric("keygate_usage_records_total", "counter", "Usage records by fate.", [
                ("fate=\"recorded\"", String(ring.appended)), ("fate=\"stored\"", String(ring.drained)),
                ("fate=\"dropped\"", String(ring.dropped)), ("fate=\"lost\"", String(ring.lost)),
            ])
            metric("keygate_usage_dropped_total", "counter", "Usage records not recorded because the ring was full.",
                   [("", String(ring.dropped))])
            metric("keygate_usage_ring_pending", "gauge", "Usage records waiting for the housekeeper.", [("", String(ring.pending))])
        }
        if let limits = context.host?.rates.statistics {
            metric("keygate_rate_limit_decisions_total", "counter", "Rate-limit checks by decision.", [
                ("decision=\"allowed\"", String(limits.allowed)), ("decision=\"refused\"", String(limits.refused)),
            ])
        }
        let slots = board.occupiedSlots().filter { $0.state != .housekeeping }
        let states = ["starting", "idle", "busy", "stopping"].map { state in
            ("state=\"\(state)\"", String(slots.filter { $0.state.name == state }.count))
        }
        metric("keygate_workers", "gauge", "Pool processes by state.", states)
        metric("keygate_worker_resident_bytes", "gauge", "Resident memory of each pool process.",
               slots.map { ("slot=\"\($0.index)\",pid=\"\($0.pid)\"", String($0.residentBytes)) })
        return out
    }
}
