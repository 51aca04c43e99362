#if canImport(Glibc)
import Glibc
#endif
import Testing
import Posix
@testable import SharedMemory

private func makeBoard(slots: Int = 4, routes: Int = 3) throws -> Scoreboard {
    let region = try SharedRegion.anonymous(size: Scoreboard.byteCount(slotCapacity: slots, routeCapacity: routes))
    return Scoreboard.create(in: region, slotCapacity: slots, routeCapacity: routes)
}

/// requestCounts as comparable tuples.
private func counts(_ board: Scoreboard) -> [String] {
    board.requestCounts().map { "\($0.routeIndex.map(String.init) ?? "unmatched") \($0.status) \($0.count)" }
}

@Suite("Scoreboard")
struct ScoreboardTests {
    @Test("byteCount grows with slots and routes")
    func byteCount() {
        let base = Scoreboard.byteCount(slotCapacity: 1, routeCapacity: 0)
        #expect(base > 0)
        #expect(Scoreboard.byteCount(slotCapacity: 2, routeCapacity: 0) > base)
        // One more route adds a row of 500 status counters, 8 bytes each.
        #expect(Scoreboard.byteCount(slotCapacity: 1, routeCapacity: 1) - base == 500 * 8)
    }

    @Test("a new scoreboard has its capacities, this master's pid and nothing counted")
    func fresh() throws {
        let board = try makeBoard(slots: 5, routes: 7)
        #expect(board.slotCapacity == 5)
        #expect(board.routeCapacity == 7)
        #expect(board.masterPID == Int(getpid()))
        #expect(board.occupiedSlots().isEmpty)
        #expect(board.requestCounts().isEmpty)
        #expect(board.generation == 0)
        #expect(board.crashRestarts == 0 && board.recycles == 0 && board.timeoutKills == 0 && board.reloads == 0)
        let now = Clock.wallMicroseconds()
        #expect(board.startedAtWall <= now && board.startedAtWall > now - 60_000_000)
    }

    @Test("pool-wide counters count")
    func poolCounters() throws {
        let board = try makeBoard()
        board.countCrashRestart()
        board.countRecycle(); board.countRecycle()
        board.countTimeoutKill(); board.countTimeoutKill(); board.countTimeoutKill()
        board.countReload()
        board.setGeneration(9)
        #expect(board.crashRestarts == 1)
        #expect(board.recycles == 2)
        #expect(board.timeoutKills == 3)
        #expect(board.reloads == 1)
        #expect(board.generation == 9)
    }

    @Test("claim marks a slot starting with pid and generation; release frees it")
    func claimAndRelease() throws {
        let board = try makeBoard()
        board.claim(2, generation: 3); board.setPID(2, 4242)
        let slots = board.occupiedSlots()
        #expect(slots.count == 1)
        let slot = try #require(slots.first)
        #expect(slot.index == 2)
        #expect(slot.pid == 4242)
        #expect(slot.state == .starting)
        #expect(slot.generation == 3)
        #expect(slot.requests == 0)
        #expect(slot.requestStartMonotonic == 0)
        #expect(slot.startedAtWall > 0)

        board.release(2)
        #expect(board.occupiedSlots().isEmpty)
        let freed = board.snapshot(2)
        #expect(freed.state == .free)
        #expect(freed.pid == 0)
    }

    @Test("a claimed slot without a pid yet is not occupied; setPID makes it so")
    func claimThenPID() throws {
        let board = try makeBoard()
        board.claim(1, generation: 2)
        #expect(board.snapshot(1).state == .starting)
        #expect(board.snapshot(1).pid == 0)
        #expect(board.occupiedSlots().isEmpty)
        board.setPID(1, 555)
        #expect(board.occupiedSlots().map(\.pid) == [555])
        // Claiming again (a new process for the slot) forgets the old pid.
        board.claim(1, generation: 3)
        #expect(board.snapshot(1).pid == 0)
        #expect(board.occupiedSlots().isEmpty)
    }

    @Test("begin and end of a request move the slot busy → idle and count it")
    func requestLifecycle() throws {
        let board = try makeBoard()
        board.claim(0, generation: 1); board.setPID(0, 100)
        board.setState(0, .idle)
        board.beginRequest(0, monotonic: 123_456, wall: 1_700_000_000_000_000)
        var slot = board.snapshot(0)
        #expect(slot.state == .busy)
        #expect(slot.requestStartMonotonic == 123_456)
        #expect(slot.requestStartWall == 1_700_000_000_000_000)

        board.endRequest(0, routeIndex: 1, status: 200)
        slot = board.snapshot(0)
        #expect(slot.state == .idle)
        #expect(slot.requestStartMonotonic == 0)
        #expect(slot.requests == 1)
        #expect(counts(board) == ["1 200 1"])
    }

    @Test("a reclaimed slot starts again from zero requests")
    func reclaimResets() throws {
        let board = try makeBoard()
        board.claim(1, generation: 1); board.setPID(1, 10)
        board.beginRequest(1, monotonic: 5, wall: 5)
        board.endRequest(1, routeIndex: 0, status: 200)
        board.beginRequest(1, monotonic: 6, wall: 6)
        board.release(1)
        board.claim(1, generation: 2); board.setPID(1, 11)
        let slot = board.snapshot(1)
        #expect(slot.pid == 11)
        #expect(slot.generation == 2)
        #expect(slot.requests == 0)
        #expect(slot.requestStartMonotonic == 0)
        #expect(slot.requestStartWall == 0)
        #expect(slot.state == .starting)
        // Pool counters survive the slot's reuse.
        #expect(counts(board) == ["0 200 1"])
    }

    @Test("requestCounts tells routes, unmatched requests and statuses apart")
    func requestCounts() throws {
        let board = try makeBoard(slots: 2, routes: 3)
        board.claim(0, generation: 0); board.setPID(0, 1)
        board.endRequest(0, routeIndex: 0, status: 200)
        board.endRequest(0, routeIndex: 0, status: 200)
        board.endRequest(0, routeIndex: 0, status: 404)
        board.endRequest(0, routeIndex: 2, status: 503)
        board.endRequest(0, routeIndex: nil, status: 404)
        board.endRequest(0, routeIndex: nil, status: 404)
        board.endRequest(0, routeIndex: nil, status: 400)
        #expect(counts(board) == ["0 200 2", "0 404 1", "2 503 1", "unmatched 400 1", "unmatched 404 2"])
        #expect(board.snapshot(0).requests == 7)
    }

    @Test("a route index beyond capacity is counted as unmatched")
    func routeBeyondCapacity() throws {
        let board = try makeBoard(slots: 1, routes: 2)
        board.endRequest(0, routeIndex: 2, status: 200)
        board.endRequest(0, routeIndex: 500, status: 200)
        #expect(counts(board) == ["unmatched 200 2"])
    }

    @Test("the last route's counters are distinct from unmatched")
    func lastRoute() throws {
        let board = try makeBoard(slots: 1, routes: 2)
        board.endRequest(0, routeIndex: 1, status: 599)
        board.endRequest(0, routeIndex: nil, status: 100)
        #expect(counts(board) == ["1 599 1", "unmatched 100 1"])
    }

    @Test("statuses outside 100...599 are clamped into range")
    func statusClamped() throws {
        let board = try makeBoard(slots: 1, routes: 1)
        board.endRequest(0, routeIndex: 0, status: 42)
        board.endRequest(0, routeIndex: 0, status: 999)
        #expect(counts(board) == ["0 100 1", "0 599 1"])
    }

    @Test("occupiedSlots lists every slot in use, in index order, with their states")
    func occupied() throws {
        let board = try makeBoard(slots: 6, routes: 1)
        board.claim(4, generation: 0); board.setPID(4, 40)
        board.claim(1, generation: 0); board.setPID(1, 10)
        board.claim(3, generation: 0); board.setPID(3, 30)
        board.setState(1, .idle)
        board.beginRequest(3, monotonic: 1, wall: 1)
        board.setState(4, .stopping)
        let slots = board.occupiedSlots()
        #expect(slots.map(\.index) == [1, 3, 4])
        #expect(slots.map(\.pid) == [10, 30, 40])
        #expect(slots.map(\.state) == [.idle, .busy, .stopping])
        board.release(3)
        #expect(board.occupiedSlots().map(\.index) == [1, 4])
    }

    @Test("resident bytes are recorded per slot")
    func residentBytes() throws {
        let board = try makeBoard()
        board.claim(0, generation: 0); board.setPID(0, 1)
        board.setResidentBytes(0, 123_456_789)
        #expect(board.snapshot(0).residentBytes == 123_456_789)
        board.claim(0, generation: 0); board.setPID(0, 2)
        #expect(board.snapshot(0).residentBytes == 0)
    }

    @Test("slot state names")
    func stateNames() {
        #expect(SlotState.allCases.map(\.name) == ["free", "starting", "idle", "busy", "stopping", "housekeeping"])
    }
}

@Suite("Scoreboard.attach")
struct ScoreboardAttachTests {
    @Test("attach to a created region sees the same capacities and counters")
    func attachSees() throws {
        let board = try makeBoard(slots: 3, routes: 2)
        board.claim(1, generation: 5); board.setPID(1, 77)
        board.endRequest(1, routeIndex: 1, status: 201)
        board.countReload()
        let attached = try Scoreboard.attach(board.region)
        #expect(attached.slotCapacity == 3)
        #expect(attached.routeCapacity == 2)
        #expect(attached.masterPID == board.masterPID)
        #expect(attached.reloads == 1)
        #expect(attached.occupiedSlots() == board.occupiedSlots())
        #expect(counts(attached) == ["1 201 1"])
        // Writes through one view are seen through the other.
        attached.endRequest(0, routeIndex: nil, status: 500)
        #expect(counts(board) == ["1 201 1", "unmatched 500 1"])
    }

    @Test("attach refuses a zeroed region")
    func zeroed() throws {
        let region = try SharedRegion.anonymous(size: Scoreboard.byteCount(slotCapacity: 2, routeCapacity: 1))
        #expect {
            _ = try Scoreboard.attach(region)
        } throws: { error in
            if case .notAScoreboard = error as? ScoreboardError { return true }
            return false
        }
    }

    @Test("attach refuses a region smaller than a header")
    func tooSmall() throws {
        let region = try SharedRegion.anonymous(size: 8)
        #expect(throws: ScoreboardError.self) { _ = try Scoreboard.attach(region) }
    }

    @Test("attach refuses a region smaller than the layout its header describes")
    func truncated() throws {
        let board = try makeBoard(slots: 2, routes: 1)
        let smallSize = Scoreboard.byteCount(slotCapacity: 1, routeCapacity: 0)
        let small = try SharedRegion.anonymous(size: smallSize)
        small.base.copyMemory(from: board.region.base, byteCount: smallSize)
        #expect {
            _ = try Scoreboard.attach(small)
        } throws: { error in
            if case .notAScoreboard = error as? ScoreboardError { return true }
            return false
        }
    }

    @Test("attach refuses another layout version")
    func wrongVersion() throws {
        let board = try makeBoard(slots: 2, routes: 1)
        // The header starts with the magic word, then the layout version; check that
        // before writing so the test cannot scribble elsewhere.
        let words = board.region.base.assumingMemoryBound(to: Int.self)
        try #require(words[0] == Scoreboard.magic)
        try #require(words[1] == Scoreboard.layoutVersion)
        words[1] = Scoreboard.layoutVersion + 1
        #expect {
            _ = try Scoreboard.attach(board.region)
        } throws: { error in
            guard case .layoutMismatch(let found, let expected) = error as? ScoreboardError else { return false }
            return found == Scoreboard.layoutVersion + 1 && expected == Scoreboard.layoutVersion
        }
        #expect(ScoreboardError.layoutMismatch(found: 2, expected: 1).description.contains("restart"))
    }

    @Test("attach through a file mapping: create by path, reopen read-only")
    func fileBacked() throws {
        let path = "/tmp/keygate-scoreboard-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(path) }
        let size = Scoreboard.byteCount(slotCapacity: 2, routeCapacity: 1)
        let region = try SharedRegion.create(path: path, size: size)
        let board = Scoreboard.create(in: region, slotCapacity: 2, routeCapacity: 1)
        board.claim(0, generation: 4); board.setPID(0, 99)
        board.endRequest(0, routeIndex: 0, status: 204)
        let reader = try Scoreboard.attach(SharedRegion.openReadOnly(path: path))
        #expect(reader.region.size == size)
        #expect(reader.occupiedSlots().map(\.pid) == [99])
        #expect(counts(reader) == ["0 204 1"])
    }
}

/// fork() in a multi-threaded test runner copies only the calling thread: a child that
/// touched a runtime lock (first use of a generic type, malloc) another thread held at
/// that moment would hang. So the parent runs every code path the child will run first,
/// on a board of its own, and the child does only atomic stores and `_exit`.
private func warmUp() throws {
    let scratch = try makeBoard(slots: 1, routes: 1)
    scratch.claim(0, generation: 0)
    scratch.setPID(0, getpid())
    scratch.endRequest(0, routeIndex: 0, status: 200)
    scratch.endRequest(0, routeIndex: nil, status: 404)
    scratch.countCrashRestart()
}

@Suite("Scoreboard across fork", .serialized)
struct ScoreboardForkTests {
    @Test("a forked child's updates are visible to the parent")
    func sharedAcrossFork() throws {
        let board = try makeBoard(slots: 2, routes: 2)
        board.claim(1, generation: 0); board.setPID(1, 1)
        board.endRequest(1, routeIndex: 0, status: 200)

        // As the master does: claim before fork, both sides record the pid.
        board.claim(0, generation: 7)
        try warmUp()
        let child = Glibc.fork()
        try #require(child >= 0)
        if child == 0 {
            // Child: only atomic stores on the shared pages, then leave without cleanup.
            board.setPID(0, getpid())
            for _ in 0..<1000 { board.endRequest(0, routeIndex: 0, status: 200) }
            board.endRequest(0, routeIndex: nil, status: 404)
            board.countCrashRestart()
            _exit(0)
        }
        board.setPID(0, child)
        #expect(waitForChild(child) == .exited(0))

        let slot = board.snapshot(0)
        #expect(slot.pid == child)
        #expect(slot.generation == 7)
        #expect(slot.requests == 1001)
        #expect(board.snapshot(1).requests == 1)
        #expect(counts(board) == ["0 200 1001", "unmatched 404 1"])
        #expect(board.crashRestarts == 1)
    }

    @Test("two children counting concurrently lose no increments")
    func concurrentChildren() throws {
        let board = try makeBoard(slots: 2, routes: 1)
        var children: [pid_t] = []
        children.reserveCapacity(2)
        try warmUp()
        let processes = 2
        let gate = StartGate(children: processes)
        defer { gate.start() }
        for index in 0..<processes {
            let child = Glibc.fork()
            try #require(child >= 0)
            if child == 0 {
                gate.awaitStart()
                for _ in 0..<20_000 { board.endRequest(index, routeIndex: 0, status: 200) }
                _exit(0)
            }
            children.append(child)
        }
        gate.start()
        for child in children {
            #expect(waitForChild(child) == .exited(0))
        }
        #expect(counts(board) == ["0 200 40000"])
        #expect(board.snapshot(0).requests == 20_000)
        #expect(board.snapshot(1).requests == 20_000)
    }
}
