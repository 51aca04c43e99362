/// What the master needs to run the pool; re-read on SIGHUP.
public struct PoolSettings: Sendable, Equatable {
    /// Number of worker processes.
    public var workers: Int
    /// A worker exits (and is replaced) after serving this many requests; 0 = never.
    public var maxRequests: Int
    /// A worker busy on one request longer than this is killed; 0 = never.
    public var requestTimeoutSeconds: Double
    /// How long a graceful stop (or a reload's retiring workers) may take before SIGKILL.
    public var shutdownTimeoutSeconds: Double
    /// This many crashes within `emergencyRestartInterval` stop the pool (a crash loop).
    public var emergencyRestartThreshold: Int
    public var emergencyRestartIntervalSeconds: Double
    /// A housekeeper that shows no progress for this long is killed and replaced.
    public var housekeeperStallSeconds: Double

    public init(workers: Int, maxRequests: Int = 0, requestTimeoutSeconds: Double = 30,
                shutdownTimeoutSeconds: Double = 30, emergencyRestartThreshold: Int = 10,
                emergencyRestartIntervalSeconds: Double = 60, housekeeperStallSeconds: Double = 60) {
        self.workers = workers
        self.maxRequests = maxRequests
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.shutdownTimeoutSeconds = shutdownTimeoutSeconds
        self.emergencyRestartThreshold = emergencyRestartThreshold
        self.emergencyRestartIntervalSeconds = emergencyRestartIntervalSeconds
        self.housekeeperStallSeconds = housekeeperStallSeconds
    }
}
