internal import CPosix

extension ProcessControl {
    /// Puts the calling process under SCHED_BATCH: when it wakes up it does not preempt
    /// the task running on that CPU (it waits for that task to block or for the tick).
    public static func useBatchScheduling() throws(POSIXError) {
        try syscall("sched_setscheduler(SCHED_BATCH)") { kg_set_batch_scheduling() }
    }
}
