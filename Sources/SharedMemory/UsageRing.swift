#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One authenticated request, as a worker records it for the housekeeper.
public struct UsageRecord: Sendable, Equatable {
    public var keyID: [UInt8]       // 16 bytes
    public var at: Int64            // wall µs
    public var method: String
    public var route: String
    public var path: String
    public var status: Int
    public var durationMicroseconds: Int
    public var remoteAddress: String
    /// Passed the rate limiter and counts against the key's quotas.
    public var counted: Bool

    public init(keyID: [UInt8], at: Int64, method: String, route: String, path: String, status: Int,
                durationMicroseconds: Int, remoteAddress: String, counted: Bool) {
        self.keyID = keyID
        self.at = at
        self.method = method
        self.route = route
        self.path = path
        self.status = status
        self.durationMicroseconds = durationMicroseconds
        self.remoteAddress = remoteAddress
        self.counted = counted
    }
}

/// The usage ring: a bounded multi-producer, single-consumer queue of `UsageRecord`s in
/// shared memory (D. Vyukov's bounded queue: one sequence number per cell, a CAS to claim
/// a position). Workers append without ever waiting: on a full ring the record is
/// dropped and counted. The housekeeper reads a batch, writes it to the database, and
/// only then frees the cells, so while the database is down records wait in the ring.
///
/// A worker killed between claiming a cell and publishing it would stall the reader; the
/// reader skips a cell that stays claimed-but-unpublished for `stallTimeout` once the
/// process that claimed it is gone (or after `giveUpTimeout` in any case), counted as lost.
/// Publishing and skipping both CAS the cell's sequence, so exactly one wins.
public struct UsageRing: @unchecked Sendable {
    public static let layoutVersion = 2
    static let magic = 0x4B45_5955_5341_4745 // "KEYUSAGE"
    static let cellSize = 512
    // Cell layout (bytes).
    static let atOffset = 8, durationOffset = 16, statusOffset = 20, countedOffset = 22
    static let lengthsOffset = 23 // method, route, path, remote: one byte each
    static let writerOffset = 28  // pid of the process filling the cell
    static let keyOffset = 32
    static let fields: [(offset: Int, capacity: Int)] = [(48, 16), (64, 96), (160, 255), (416, 64)]

    struct Header: ~Copyable {
        let magic = Atomic<Int>(0)
        let version = Atomic<Int>(0)
        let capacity = Atomic<Int>(0)
        let enqueuePosition = Atomic<Int>(0)
        let dequeuePosition = Atomic<Int>(0)
        let appended = Atomic<Int>(0)
        let dropped = Atomic<Int>(0)
        let drained = Atomic<Int>(0)
        let lost = Atomic<Int>(0)
        /// This ring's identity (16 random bytes), under which the database records how far
        /// it has been stored.
        let idHigh = Atomic<UInt64>(0)
        let idLow = Atomic<UInt64>(0)
    }

    public let region: SharedRegion
    public let capacity: Int
    private let header: UnsafeMutablePointer<Header>
    private let cells: UnsafeMutableRawPointer

    static let cellsOffset = (MemoryLayout<Header>.stride + 63) & ~63

    /// Capacity rounds up to a power of two.
    public static func capacity(for records: Int) -> Int {
        var capacity = 2
        while capacity < records { capacity <<= 1 }
        return capacity
    }

    public static func byteCount(records: Int) -> Int {
        cellsOffset + capacity(for: records) * cellSize
    }

    /// `id`: 16 bytes naming this ring (random; see `id`).
    public static func create(in region: SharedRegion, records: Int, id: [UInt8]) -> UsageRing {
        let header = region.base.bindMemory(to: Header.self, capacity: 1)
        header.initialize(to: Header())
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyBytes(from: id.prefix(16)) }
        header.pointee.idHigh.store(words.0, ordering: .relaxed)
        header.pointee.idLow.store(words.1, ordering: .relaxed)
        let capacity = capacity(for: records)
        let ring = UsageRing(region: region, header: header, capacity: capacity)
        for index in 0..<capacity { ring.sequence(index).initialize(to: Atomic<Int>(index)) }
        header.pointee.capacity.store(capacity, ordering: .relaxed)
        header.pointee.version.store(layoutVersion, ordering: .relaxed)
        header.pointee.magic.store(magic, ordering: .releasing)
        return ring
    }

    public static func attach(_ region: SharedRegion) throws(SegmentError) -> UsageRing {
        try SegmentStamp.verify(region, minimumSize: cellsOffset, magic: magic, version: layoutVersion, kind: "usage ring")
        let header = region.base.assumingMemoryBound(to: Header.self)
        let capacity = header.pointee.capacity.load(ordering: .relaxed)
        guard capacity > 1, capacity & (capacity - 1) == 0, capacity <= (region.size - cellsOffset) / cellSize else {
            throw .wrongKind("usage ring")
        }
        return UsageRing(region: region, header: header, capacity: capacity)
    }

    private init(region: SharedRegion, header: UnsafeMutablePointer<Header>, capacity: Int) {
        self.region = region
        self.header = header
        self.capacity = capacity
        cells = region.base + Self.cellsOffset
    }

    @inline(__always)
    private func cell(_ index: Int) -> UnsafeMutableRawPointer { cells + index * Self.cellSize }

    @inline(__always)
    private func sequence(_ index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        cell(index).assumingMemoryBound(to: Atomic<Int>.self)
    }

    // MARK: Producers (workers)

    /// Appends `record`; never waits. False when the ring was full (the record is counted as dropped).
    /// `writer` is the calling process's pid (the reader skips a cell whose writer died
    /// mid-write); a worker passes the one it read at start, saving a system call per record.
    @discardableResult
    public func append(_ record: UsageRecord, writer: Int32 = getpid()) -> Bool {
        var position = header.pointee.enqueuePosition.load(ordering: .relaxed)
        while true {
            let index = position & (capacity - 1)
            let sequence = sequence(index).pointee.load(ordering: .acquiring)
            let difference = sequence - position
            if difference == 0 {
                let (exchanged, current) = header.pointee.enqueuePosition.weakCompareExchange(
                    expected: position, desired: position + 1, ordering: .relaxed)
                if exchanged {
                    cell(index).storeBytes(of: writer, toByteOffset: Self.writerOffset, as: Int32.self)
                    write(record, into: cell(index))
                    // Publish, unless the reader gave up on this cell meanwhile.
                    if self.sequence(index).pointee.compareExchange(expected: position, desired: position + 1, ordering: .releasing).exchanged {
                        header.pointee.appended.wrappingAdd(1, ordering: .relaxed)
                        return true
                    }
                    header.pointee.dropped.wrappingAdd(1, ordering: .relaxed)
                    return false
                }
                position = current
            } else if difference < 0 {
                header.pointee.dropped.wrappingAdd(1, ordering: .relaxed)
                return false
            } else {
                position = header.pointee.enqueuePosition.load(ordering: .relaxed)
            }
        }
    }

    private func write(_ record: UsageRecord, into cell: UnsafeMutableRawPointer) {
        cell.storeBytes(of: record.at, toByteOffset: Self.atOffset, as: Int64.self)
        cell.storeBytes(of: UInt32(clamping: max(0, record.durationMicroseconds)), toByteOffset: Self.durationOffset, as: UInt32.self)
        cell.storeBytes(of: UInt16(clamping: max(0, record.status)), toByteOffset: Self.statusOffset, as: UInt16.self)
        cell.storeBytes(of: record.counted ? 1 : 0, toByteOffset: Self.countedOffset, as: UInt8.self)
        record.keyID.withUnsafeBytes { key in
            let count = min(key.count, 16)
            if let base = key.baseAddress { (cell + Self.keyOffset).copyMemory(from: base, byteCount: count) }
            if count < 16 { (cell + Self.keyOffset + count).initializeMemory(as: UInt8.self, repeating: 0, count: 16 - count) }
        }
        Self.copy(record.method, into: cell, field: 0)
        Self.copy(record.route, into: cell, field: 1)
        Self.copy(record.path, into: cell, field: 2)
        Self.copy(record.remoteAddress, into: cell, field: 3)
    }

    /// Copies up to the field's capacity of `text`'s UTF-8 into the cell, with its length.
    private static func copy(_ text: String, into cell: UnsafeMutableRawPointer, field number: Int) {
        let field = fields[number]
        var text = text
        let length = text.withUTF8 { bytes in
            let count = min(bytes.count, field.capacity)
            if let base = bytes.baseAddress { (cell + field.offset).copyMemory(from: base, byteCount: count) }
            return count
        }
        cell.storeBytes(of: UInt8(length), toByteOffset: lengthsOffset + number, as: UInt8.self)
    }

    /// The 16 bytes given at creation.
    public var id: [UInt8] {
        let words = (header.pointee.idHigh.load(ordering: .relaxed), header.pointee.idLow.load(ordering: .relaxed))
        return withUnsafeBytes(of: words) { Array($0) }
    }

    /// Whether the positions and every cell's sequence number lie within what this queue
    /// ever writes. For a ring at rest (no process attached) that an earlier run left
    /// behind: its records are stored as they are, and damaged numbers could overflow the
    /// reader's arithmetic, so such a ring is replaced instead of read.
    public var isConsistentAtRest: Bool {
        let enqueued = header.pointee.enqueuePosition.load(ordering: .acquiring)
        let dequeued = header.pointee.dequeuePosition.load(ordering: .acquiring)
        guard dequeued >= 0, enqueued >= dequeued, enqueued - dequeued <= capacity, enqueued <= Int.max - 2 * capacity else {
            return false
        }
        for index in 0..<capacity {
            let sequence = sequence(index).pointee.load(ordering: .relaxed)
            guard sequence >= 0, sequence <= enqueued + capacity else { return false }
        }
        return true
    }

    // MARK: Statistics

    public var statistics: UsageRingStatistics {
        let enqueued = header.pointee.enqueuePosition.load(ordering: .relaxed)
        let dequeued = header.pointee.dequeuePosition.load(ordering: .relaxed)
        // Relaxed loads: the dequeue position may be read newer than the enqueue one.
        return UsageRingStatistics(capacity: capacity, pending: min(max(0, enqueued &- dequeued), capacity),
                                   appended: header.pointee.appended.load(ordering: .relaxed),
                                   dropped: header.pointee.dropped.load(ordering: .relaxed),
                                   drained: header.pointee.drained.load(ordering: .relaxed),
                                   lost: header.pointee.lost.load(ordering: .relaxed))
    }

    // MARK: The consumer (housekeeper)

    /// The single reader's side. Only one process may read at a time (the housekeeper).
    public final class Reader {
        let ring: UsageRing
        /// How long a claimed cell may stay unpublished before it is skipped if its writer is dead (µs).
        let stallTimeout: Int64
        /// ... and before it is skipped even though its writer still lives (stuck).
        let giveUpTimeout: Int64
        private var stalledPosition = -1
        private var stalledSince: Int64 = 0
        private var pending = 0

        public init(_ ring: UsageRing, stallTimeout: Int64 = 2_000_000, giveUpTimeout: Int64 = 30_000_000) {
            self.ring = ring
            self.stallTimeout = stallTimeout
            self.giveUpTimeout = giveUpTimeout
        }

        /// Up to `limit` records waiting in the ring, oldest first, without freeing them:
        /// call `commit()` once they are stored, or `peek` again to get the same ones.
        public func peek(limit: Int, now: Int64) -> [UsageRecord] {
            var records: [UsageRecord] = []
            let start = ring.header.pointee.dequeuePosition.load(ordering: .relaxed)
            var position = start
            while records.count < limit {
                let index = position & (ring.capacity - 1)
                let sequence = ring.sequence(index).pointee.load(ordering: .acquiring)
                if sequence == position + 1 {
                    records.append(ring.read(ring.cell(index)))
                    position += 1
                    continue
                }
                if sequence - position >= ring.capacity && records.isEmpty {
                    // Freed for the next lap, yet not behind dequeuePosition: a reader died
                    // between freeing cells and moving the position on (see `commit`). Its
                    // record is stored or counted lost already; catch up instead of
                    // waiting for a sequence that will never come.
                    ring.header.pointee.dequeuePosition.store(position + 1, ordering: .relaxed)
                    position += 1
                    continue
                }
                // Not published. Claimed by a producer that is still writing, or died?
                let enqueued = ring.header.pointee.enqueuePosition.load(ordering: .relaxed)
                guard sequence == position, enqueued > position, records.isEmpty else { break }
                if stalledPosition != position {
                    stalledPosition = position
                    stalledSince = now
                    break
                }
                guard now - stalledSince >= stallTimeout else { break }
                // Still being written by a live (if slow) process: skipping now could let the
                // next lap's writer share the cell with it.
                let writer = ring.cell(index).load(fromByteOffset: UsageRing.writerOffset, as: Int32.self)
                if writer > 0 && kill(writer, 0) == 0 && now - stalledSince < giveUpTimeout { break }
                if ring.sequence(index).pointee.compareExchange(expected: position, desired: position + ring.capacity, ordering: .acquiringAndReleasing).exchanged {
                    ring.header.pointee.lost.wrappingAdd(1, ordering: .relaxed)
                    ring.header.pointee.dequeuePosition.store(position + 1, ordering: .relaxed)
                }
                return peek(limit: limit, now: now)
            }
            pending = records.count
            return records
        }

        /// The ring position of the oldest record not yet freed: a `peek` returns the
        /// records from here on, and storing them all brings the ring to `position + count`.
        public var position: Int { ring.header.pointee.dequeuePosition.load(ordering: .relaxed) }

        /// Frees, without reading them, the records before `through` that the database
        /// says are stored already (an earlier attempt committed, then died or lost the
        /// answer). Returns how many it freed; stops at a cell not published.
        @discardableResult
        public func markStored(through: Int) -> Int {
            var position = self.position
            let start = position
            while position < through {
                let cell = ring.sequence(position & (ring.capacity - 1))
                let sequence = cell.pointee.load(ordering: .acquiring)
                if sequence == position + 1 {
                    cell.pointee.store(position + ring.capacity, ordering: .releasing)
                } else if sequence - position < ring.capacity {
                    break // not published: it cannot have been stored
                } // else freed already (a reader died mid-commit): only the position moves on
                position += 1
                ring.header.pointee.dequeuePosition.store(position, ordering: .relaxed)
            }
            ring.header.pointee.drained.wrappingAdd(position - start, ordering: .relaxed)
            pending = 0
            return position - start
        }

        /// Frees the cells of the last `peek`, or only its first `count` records.
        public func commit(count: Int? = nil) {
            let freed = min(count ?? pending, pending)
            let start = ring.header.pointee.dequeuePosition.load(ordering: .relaxed)
            for position in start..<(start + freed) {
                ring.sequence(position & (ring.capacity - 1)).pointee.store(position + ring.capacity, ordering: .releasing)
            }
            ring.header.pointee.dequeuePosition.store(start + freed, ordering: .relaxed)
            ring.header.pointee.drained.wrappingAdd(freed, ordering: .relaxed)
            pending -= freed
        }
    }

    /// Test support: what a reader killed in the middle of `commit` leaves behind: the
    /// first `count` waiting cells freed, the dequeue position not moved on.
    public func simulateReaderDyingMidCommit(count: Int) {
        let start = header.pointee.dequeuePosition.load(ordering: .relaxed)
        for position in start..<(start + count) {
            sequence(position & (capacity - 1)).pointee.store(position + capacity, ordering: .releasing)
        }
    }

    /// Test support: claims the next position the way `append` does, names `writer` as the
    /// process filling it, and never publishes it (a worker killed, or stuck, in between).
    public func simulateProducerDyingAfterClaim(writer: Int32 = 0) {
        let position = header.pointee.enqueuePosition.wrappingAdd(1, ordering: .relaxed).oldValue
        cell(position & (capacity - 1)).storeBytes(of: writer, toByteOffset: Self.writerOffset, as: Int32.self)
    }

    private func read(_ cell: UnsafeMutableRawPointer) -> UsageRecord {
        func text(_ number: Int) -> String {
            let field = Self.fields[number]
            let length = min(Int(cell.load(fromByteOffset: Self.lengthsOffset + number, as: UInt8.self)), field.capacity)
            return String(decoding: UnsafeRawBufferPointer(start: cell + field.offset, count: length), as: UTF8.self)
        }
        return UsageRecord(
            keyID: [UInt8](UnsafeRawBufferPointer(start: cell + Self.keyOffset, count: 16)),
            at: cell.load(fromByteOffset: Self.atOffset, as: Int64.self),
            method: text(0), route: text(1), path: text(2),
            status: Int(cell.load(fromByteOffset: Self.statusOffset, as: UInt16.self)),
            durationMicroseconds: Int(cell.load(fromByteOffset: Self.durationOffset, as: UInt32.self)),
            remoteAddress: text(3),
            counted: cell.load(fromByteOffset: Self.countedOffset, as: UInt8.self) != 0)
    }
}

public struct UsageRingStatistics: Sendable, Equatable {
    public let capacity: Int
    public let pending: Int
    public let appended: Int
    public let dropped: Int
    public let drained: Int
    public let lost: Int
}
