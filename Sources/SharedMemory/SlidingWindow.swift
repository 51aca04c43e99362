/// A sliding-window counter over fixed-width buckets, as plain data for shared memory.
///
/// The window of `bucketCount - 1` buckets is counted together with the current,
/// partly elapsed bucket, so what is counted always covers at least the whole window:
/// "at most N in any window" holds exactly, at the price of up to one bucket of extra
/// wait. (A fixed window would let 2N through across its boundary; a two-window
/// estimate lets bursts past N.)
struct WindowHeader {
    /// Absolute number (time / width) of the newest bucket written.
    var lastBucket: Int64
    /// Sum of all buckets.
    var total: Int64
}

struct SlidingWindow {
    let width: Int64
    let bucketCount: Int
    let header: UnsafeMutablePointer<WindowHeader>
    let buckets: UnsafeMutablePointer<UInt32>

    /// Drops buckets that have left the window at `now` (µs).
    func advance(to now: Int64) {
        let current = now / width
        let last = header.pointee.lastBucket
        guard current > last else { return } // same bucket, or the clock stepped back
        if current - last >= Int64(bucketCount) {
            for index in 0..<bucketCount { buckets[index] = 0 }
            header.pointee.total = 0
        } else {
            var bucket = last + 1
            while bucket <= current {
                let index = Int(bucket % Int64(bucketCount))
                header.pointee.total -= Int64(buckets[index])
                buckets[index] = 0
                bucket += 1
            }
        }
        header.pointee.lastBucket = current
    }

    var total: Int { Int(header.pointee.total) }

    /// After a writer died mid-update: the total is the one value that can disagree with
    /// the buckets (counted apart from its bucket, or a drop half done), so it is summed
    /// anew. Buckets left of the window stay cleared or are cleared by the next `advance`.
    func rebuildTotal() {
        var sum: Int64 = 0
        for index in 0..<bucketCount { sum += Int64(buckets[index]) }
        header.pointee.total = sum
    }

    func count() {
        let index = Int(header.pointee.lastBucket % Int64(bucketCount))
        buckets[index] &+= 1
        header.pointee.total += 1
    }

    /// µs from `now` until enough of the counted requests have left the window for the
    /// total to drop below `limit` (call after `advance(to: now)`).
    func wait(until limit: Int, now: Int64) -> Int64 {
        let excess = header.pointee.total - Int64(limit) + 1
        guard excess > 0 else { return 0 }
        var freed: Int64 = 0
        let newest = header.pointee.lastBucket
        var bucket = newest - Int64(bucketCount) + 1
        while bucket <= newest {
            freed += Int64(buckets[Int(((bucket % Int64(bucketCount)) + Int64(bucketCount)) % Int64(bucketCount))])
            if freed >= excess { return (bucket + Int64(bucketCount)) * width - now }
            bucket += 1
        }
        return Int64(bucketCount) * width
    }

    /// µs until the oldest counted request leaves the window; the window's length when empty.
    func untilOldestLeaves(now: Int64) -> Int64 {
        let newest = header.pointee.lastBucket
        var bucket = newest - Int64(bucketCount) + 1
        while bucket <= newest {
            if buckets[Int(((bucket % Int64(bucketCount)) + Int64(bucketCount)) % Int64(bucketCount))] > 0 {
                return (bucket + Int64(bucketCount)) * width - now
            }
            bucket += 1
        }
        return Int64(bucketCount - 1) * width
    }

    func reset() {
        for index in 0..<bucketCount { buckets[index] = 0 }
        header.pointee.total = 0
    }
}
