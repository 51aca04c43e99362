import Synchronization
import Posix

/// What a pool process is doing, as recorded in its scoreboard slot.
public enum SlotState: Int, Sendable, CaseIterable {
    case free = 0, starting, idle, busy, stopping
    /// The housekeeper's slot, for its whole life (it serves no requests).
    case housekeeping

    public var name: String {
        switch self {
        case .free: return "free"
        case .starting: return "starting"
        case .idle: return "idle"
        case .busy: return "busy"
        case .stopping: return "stopping"
        case .housekeeping: return "housekeeping"
        }
    }
}

/// The pool's shared scoreboard: a header with pool-wide counters, one slot per process,
/// and per-route, per-status request counters. Every field is an atomic word, so a worker
/// killed mid-update leaves nothing locked or torn.
///
/// Layout: `Header` | `Slot` × capacity | `UInt64` counters × (routeCapacity + 1) × 500.
public struct Scoreboard: @unchecked Sendable {
    /// Bump when any of the layouts below changes: a binary refuses a segment of another layout.
    public static let layoutVersion = 1
    static let magic = 0x4B45_5947_4154_4531 // "KEYGATE1"
    /// Status codes 100...599 each have a counter.
    static let statusBuckets = 500

    struct Header: ~Copyable {
        let magic = Atomic<Int>(0)
        let version = Atomic<Int>(0)
        let slotCapacity = Atomic<Int>(0)
        let routeCapacity = Atomic<Int>(0)
        let masterPID = Atomic<Int>(0)
        let startedAtWall = Atomic<Int>(0)
        let generation = Atomic<Int>(0)
        let crashRestarts = Atomic<Int>(0)
        let recycles = Atomic<Int>(0)
        let timeoutKills = Atomic<Int>(0)
        let reloads = Atomic<Int>(0)
    }

    struct Slot: ~Copyable {
        let pid = Atomic<Int>(0)
        let state = Atomic<Int>(0)
        let generation = Atomic<Int>(0)
        let requests = Atomic<Int>(0)
        /// Monotonic µs when the current request started; 0 when none is running.
        let requestStartMonotonic = Atomic<Int>(0)
        let requestStartWall = Atomic<Int>(0)
        let startedAtWall = Atomic<Int>(0)
        let residentBytes = Atomic<Int>(0)
    }

    public let region: SharedRegion
    public let slotCapacity: Int
    public let routeCapacity: Int
    private let header: UnsafeMutablePointer<Header>
    private let slots: UnsafeMutablePointer<Slot>
    private let counters: UnsafeMutablePointer<Atomic<Int>>

    public static func byteCount(slotCapacity: Int, routeCapacity: Int) -> Int {
        MemoryLayout<Header>.stride + MemoryLayout<Slot>.stride * slotCapacity
            + MemoryLayout<Atomic<Int>>.stride * (routeCapacity + 1) * statusBuckets
    }

    /// Initialises a new scoreboard in `region` (the master, before forking).
    public static func create(in region: SharedRegion, slotCapacity: Int, routeCapacity: Int) -> Scoreboard {
        let board = Scoreboard(region: region, slotCapacity: slotCapacity, routeCapacity: routeCapacity)
        board.header.initialize(to: Header())
        for index in 0..<slotCapacity { (board.slots + index).initialize(to: Slot()) }
        for index in 0..<(routeCapacity + 1) * statusBuckets { (board.counters + index).initialize(to: Atomic<Int>(0)) }
        board.header.pointee.slotCapacity.store(slotCapacity, ordering: .relaxed)
        board.header.pointee.routeCapacity.store(routeCapacity, ordering: .relaxed)
        board.header.pointee.version.store(layoutVersion, ordering: .relaxed)
        board.header.pointee.startedAtWall.store(Int(Clock.wallMicroseconds()), ordering: .relaxed)
        board.header.pointee.masterPID.store(Int(ProcessControl.currentPID), ordering: .relaxed)
        board.header.pointee.magic.store(magic, ordering: .releasing)
        return board
    }

    /// Attaches to an existing scoreboard (status tools), checking magic and layout version.
    public static func attach(_ region: SharedRegion) throws(ScoreboardError) -> Scoreboard {
        guard region.size >= MemoryLayout<Header>.stride else { throw .notAScoreboard }
        let header = region.base.assumingMemoryBound(to: Header.self)
        guard header.pointee.magic.load(ordering: .acquiring) == magic else { throw .notAScoreboard }
        let version = header.pointee.version.load(ordering: .relaxed)
        guard version == layoutVersion else { throw .layoutMismatch(found: version, expected: layoutVersion) }
        let slotCapacity = header.pointee.slotCapacity.load(ordering: .relaxed)
        let routeCapacity = header.pointee.routeCapacity.load(ordering: .relaxed)
        // Bounded before they are multiplied: values read from a damaged file must not overflow.
        guard slotCapacity > 0, routeCapacity >= 0, slotCapacity <= region.size, routeCapacity <= region.size,
              byteCount(slotCapacity: slotCapacity, routeCapacity: routeCapacity) <= region.size else {
            throw .notAScoreboard
        }
        return Scoreboard(region: region, slotCapacity: slotCapacity, routeCapacity: routeCapacity)
    }

    private init(region: SharedRegion, slotCapacity: Int, routeCapacity: Int) {
        self.region = region
        self.slotCapacity = slotCapacity
        self.routeCapacity = routeCapacity
        header = region.base.assumingMemoryBound(to: Header.self)
        let slotBase = region.base + MemoryLayout<Header>.stride
        slots = slotBase.assumingMemoryBound(to: Slot.self)
        counters = (slotBase + MemoryLayout<Slot>.stride * slotCapacity).assumingMemoryBound(to: Atomic<Int>.self)
    }

    // MARK: Pool-wide

    public var masterPID: Int { header.pointee.masterPID.load(ordering: .relaxed) }
    public var startedAtWall: Int64 { Int64(header.pointee.startedAtWall.load(ordering: .relaxed)) }
    public var generation: Int { header.pointee.generation.load(ordering: .relaxed) }
    public var crashRestarts: Int { header.pointee.crashRestarts.load(ordering: .relaxed) }
    public var recycles: Int { header.pointee.recycles.load(ordering: .relaxed) }
    public var timeoutKills: Int { header.pointee.timeoutKills.load(ordering: .relaxed) }
    public var reloads: Int { header.pointee.reloads.load(ordering: .relaxed) }

    public func setGeneration(_ value: Int) { header.pointee.generation.store(value, ordering: .relaxed) }
    public func countCrashRestart() { header.pointee.crashRestarts.wrappingAdd(1, ordering: .relaxed) }
    public func countRecycle() { header.pointee.recycles.wrappingAdd(1, ordering: .relaxed) }
    public func countTimeoutKill() { header.pointee.timeoutKills.wrappingAdd(1, ordering: .relaxed) }
    public func countReload() { header.pointee.reloads.wrappingAdd(1, ordering: .relaxed) }

    // MARK: Slots

    /// Claims slot `index` for a process about to be forked (master side, before fork, so
    /// the child's own state updates can never be overwritten by this one).
    public func claim(_ index: Int, generation: Int, state: SlotState = .starting) {
        let slot = slots + index
        slot.pointee.requests.store(0, ordering: .relaxed)
        slot.pointee.requestStartMonotonic.store(0, ordering: .relaxed)
        slot.pointee.requestStartWall.store(0, ordering: .relaxed)
        slot.pointee.residentBytes.store(0, ordering: .relaxed)
        slot.pointee.generation.store(generation, ordering: .relaxed)
        slot.pointee.startedAtWall.store(Int(Clock.wallMicroseconds()), ordering: .relaxed)
        slot.pointee.pid.store(0, ordering: .relaxed)
        slot.pointee.state.store(state.rawValue, ordering: .releasing)
    }

    /// Records the process now owning a claimed slot (both sides of the fork write it).
    public func setPID(_ index: Int, _ pid: Int32) {
        slots[index].pid.store(Int(pid), ordering: .releasing)
    }

    /// Frees a slot whose process has been reaped.
    public func release(_ index: Int) {
        slots[index].state.store(SlotState.free.rawValue, ordering: .relaxed)
        slots[index].requestStartMonotonic.store(0, ordering: .relaxed)
        slots[index].pid.store(0, ordering: .releasing)
    }

    public func setState(_ index: Int, _ state: SlotState) {
        slots[index].state.store(state.rawValue, ordering: .relaxed)
    }

    /// A worker starts serving a request.
    public func beginRequest(_ index: Int, monotonic: Int64, wall: Int64) {
        slots[index].requestStartWall.store(Int(wall), ordering: .relaxed)
        slots[index].requestStartMonotonic.store(Int(monotonic), ordering: .relaxed)
        slots[index].state.store(SlotState.busy.rawValue, ordering: .relaxed)
    }

    /// A worker's connection broke off before it made a request (nothing to count).
    public func abandonRequest(_ index: Int) {
        slots[index].requestStartMonotonic.store(0, ordering: .relaxed)
        slots[index].state.store(SlotState.idle.rawValue, ordering: .relaxed)
    }

    /// A worker finished a request with `status` on route `routeIndex` (nil: no route matched).
    public func endRequest(_ index: Int, routeIndex: Int?, status: Int) {
        slots[index].requests.wrappingAdd(1, ordering: .relaxed)
        slots[index].requestStartMonotonic.store(0, ordering: .relaxed)
        slots[index].state.store(SlotState.idle.rawValue, ordering: .relaxed)
        let route = routeIndex.flatMap { $0 < routeCapacity ? $0 : nil } ?? routeCapacity
        let bucket = min(max(status, 100), 599) - 100
        counters[route * Self.statusBuckets + bucket].wrappingAdd(1, ordering: .relaxed)
    }

    /// The housekeeper's sign of life, in the field a worker uses for its request start
    /// (it serves no requests): the master replaces a housekeeper that stops beating.
    public func heartbeat(_ index: Int, monotonic: Int64) {
        slots[index].requestStartMonotonic.store(Int(monotonic), ordering: .relaxed)
    }

    public func setResidentBytes(_ index: Int, _ bytes: UInt64) {
        slots[index].residentBytes.store(Int(bytes), ordering: .relaxed)
    }

    /// A consistent-enough copy of one slot for display.
    public func snapshot(_ index: Int) -> SlotSnapshot {
        let slot = slots + index
        return SlotSnapshot(
            index: index,
            pid: Int32(truncatingIfNeeded: slot.pointee.pid.load(ordering: .acquiring)),
            state: SlotState(rawValue: slot.pointee.state.load(ordering: .relaxed)) ?? .free,
            generation: slot.pointee.generation.load(ordering: .relaxed),
            requests: slot.pointee.requests.load(ordering: .relaxed),
            requestStartMonotonic: Int64(slot.pointee.requestStartMonotonic.load(ordering: .relaxed)),
            requestStartWall: Int64(slot.pointee.requestStartWall.load(ordering: .relaxed)),
            startedAtWall: Int64(slot.pointee.startedAtWall.load(ordering: .relaxed)),
            residentBytes: UInt64(slot.pointee.residentBytes.load(ordering: .relaxed))
        )
    }

    /// Every slot in use.
    public func occupiedSlots() -> [SlotSnapshot] {
        (0..<slotCapacity).map(snapshot).filter { $0.state != .free && $0.pid != 0 }
    }

    /// Non-zero request counters as (route index or nil for unmatched, status, count).
    public func requestCounts() -> [(routeIndex: Int?, status: Int, count: Int)] {
        var result: [(routeIndex: Int?, status: Int, count: Int)] = []
        for route in 0...routeCapacity {
            for bucket in 0..<Self.statusBuckets {
                let count = counters[route * Self.statusBuckets + bucket].load(ordering: .relaxed)
                if count > 0 { result.append((route == routeCapacity ? nil : route, bucket + 100, count)) }
            }
        }
        return result
    }
}

/// One slot as read at one moment.
public struct SlotSnapshot: Sendable, Equatable {
    public let index: Int
    public let pid: Int32
    public let state: SlotState
    public let generation: Int
    public let requests: Int
    public let requestStartMonotonic: Int64
    public let requestStartWall: Int64
    public let startedAtWall: Int64
    public let residentBytes: UInt64
}

public enum ScoreboardError: Error, CustomStringConvertible {
    case notAScoreboard
    case layoutMismatch(found: Int, expected: Int)

    public var description: String {
        switch self {
        case .notAScoreboard: return "the file is not a keygate scoreboard"
        case .layoutMismatch(let found, let expected):
            return "scoreboard layout \(found) was written by another keygate version (this one reads \(expected)); restart the pool"
        }
    }
}
