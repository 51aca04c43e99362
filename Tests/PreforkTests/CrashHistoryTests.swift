import Testing
@testable import Prefork

private let second: Int64 = 1_000_000

@Suite("Crash back-off")
struct CrashHistoryTests {
    @Test("the first replacement starts at once, then 100 ms doubling up to 5 s")
    func backOff() {
        var history = CrashHistory()
        let waits = (0..<10).map { history.record(at: Int64($0) * second, windowMicroseconds: 60 * second) }
        #expect(waits == [0, 100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000, 5_000_000, 5_000_000, 5_000_000])
    }

    @Test("a child that ran healthily resets the back-off, not the count of recent crashes")
    func healthyRunResets() {
        var history = CrashHistory()
        _ = history.record(at: 0, windowMicroseconds: 60 * second)
        _ = history.record(at: second, windowMicroseconds: 60 * second)
        #expect(history.record(at: 2 * second, windowMicroseconds: 60 * second) == 200_000)
        history.noteHealthyRun()
        #expect(history.record(at: 3 * second, windowMicroseconds: 60 * second) == 0)
        #expect(history.recentCount(at: 3 * second, windowMicroseconds: 60 * second) == 4)
    }

    @Test("only crashes inside the window count towards the emergency threshold")
    func window() {
        var history = CrashHistory()
        for at in [0, 10, 20, 70] { _ = history.record(at: Int64(at) * second, windowMicroseconds: 60 * second) }
        #expect(history.recentCount(at: 70 * second, windowMicroseconds: 60 * second) == 3) // 10, 20, 70
        #expect(history.recentCount(at: 200 * second, windowMicroseconds: 60 * second) == 0)
        #expect(history.times.count == 3) // the crash at 0 was dropped when 70 came
    }
}
