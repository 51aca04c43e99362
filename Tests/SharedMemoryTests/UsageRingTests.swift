#if canImport(Glibc)
import Glibc
#endif
import Testing
import Posix
@testable import SharedMemory

private func makeRing(records: Int) throws -> UsageRing {
    UsageRing.create(in: try SharedRegion.anonymous(size: UsageRing.byteCount(records: records)), records: records,
                     id: Array(0..<16))
}

private func record(_ number: Int, producer: UInt8 = 1) -> UsageRecord {
    UsageRecord(keyID: [UInt8](repeating: producer, count: 16), at: Int64(number), method: "GET", route: "GET /api/v1/auth/key",
                path: "/api/v1/auth/key", status: 200, durationMicroseconds: number, remoteAddress: "192.0.2.1", counted: number % 2 == 0)
}

@Suite("Usage ring")
struct UsageRingTests {
    @Test("records come out in order with every field; long texts are cut, not overflowed")
    func roundTrip() throws {
        let ring = try makeRing(records: 16)
        var long = record(1)
        long.path = "/" + String(repeating: "p", count: 400)
        long.route = String(repeating: "r", count: 200)
        #expect(ring.append(record(0)))
        #expect(ring.append(long))
        let reader = UsageRing.Reader(ring)
        let out = reader.peek(limit: 10, now: 0)
        #expect(out.count == 2)
        #expect(out[0] == record(0))
        #expect(out[1].path.utf8.count == 255 && out[1].path.hasPrefix("/ppp"))
        #expect(out[1].route.utf8.count == 96)
        #expect(out[1].counted == false && out[1].durationMicroseconds == 1)
    }

    @Test("a ring whose header claims more cells than its segment holds is refused, however large the claim")
    func attachChecksCapacity() throws {
        let region = try SharedRegion.anonymous(size: UsageRing.byteCount(records: 16))
        _ = UsageRing.create(in: region, records: 16, id: Array(0..<16))
        #expect(try UsageRing.attach(region).capacity == 16)
        let capacity = region.base.assumingMemoryBound(to: Int.self) + 2 // magic, version, capacity
        for claim in [32, 1 << 40, 1 << 62] {
            capacity.pointee = claim
            #expect(throws: SegmentError.self, "\(claim)") { try UsageRing.attach(region) }
        }
    }

    @Test("a ring left behind is read only when its positions and sequence numbers are in range")
    func consistentAtRest() throws {
        let ring = try makeRing(records: 8)
        #expect(ring.isConsistentAtRest)
        for number in 0..<5 { ring.append(record(number)) }
        let reader = UsageRing.Reader(ring)
        _ = reader.peek(limit: 2, now: 0)
        reader.commit()
        #expect(ring.isConsistentAtRest && ring.statistics.pending == 3)
        let words = ring.region.base.assumingMemoryBound(to: Int.self) // magic, version, capacity, enqueue, dequeue
        let enqueued = words[3]
        for (enqueue, dequeue) in [(Int.max, 0), (enqueued, enqueued + 1), (enqueued + 9, enqueued), (enqueued, -1)] {
            (words[3], words[4]) = (enqueue, dequeue)
            #expect(!ring.isConsistentAtRest, "enqueue \(enqueue), dequeue \(dequeue)")
            _ = ring.statistics // never traps, whatever the positions
        }
        (words[3], words[4]) = (enqueued, 2)
        #expect(ring.isConsistentAtRest)
        let cell = ring.region.base + UsageRing.cellsOffset + UsageRing.cellSize // the second cell's sequence number
        cell.storeBytes(of: Int.min, as: Int.self)
        #expect(!ring.isConsistentAtRest)
    }

    @Test("records stay until committed (the database may be down)")
    func peekCommit() throws {
        let ring = try makeRing(records: 16)
        for number in 0..<5 { ring.append(record(number)) }
        let reader = UsageRing.Reader(ring)
        #expect(reader.peek(limit: 3, now: 0).map(\.at) == [0, 1, 2])
        #expect(reader.peek(limit: 3, now: 0).map(\.at) == [0, 1, 2]) // not committed: the same again
        reader.commit()
        #expect(ring.statistics.pending == 2 && ring.statistics.drained == 3)
        #expect(reader.peek(limit: 10, now: 0).map(\.at) == [3, 4])
        reader.commit()
        #expect(reader.peek(limit: 10, now: 0).isEmpty)
    }

    @Test("a batch can be freed a record at a time (stored one by one)")
    func partialCommit() throws {
        let ring = try makeRing(records: 16)
        for number in 0..<4 { ring.append(record(number)) }
        let reader = UsageRing.Reader(ring)
        #expect(reader.peek(limit: 10, now: 0).count == 4)
        reader.commit(count: 1)
        reader.commit(count: 1)
        #expect(ring.statistics.drained == 2 && ring.statistics.pending == 2)
        // The rest were not stored: they come again, and nothing is freed twice.
        #expect(reader.peek(limit: 10, now: 0).map(\.at) == [2, 3])
        reader.commit(count: 5)
        #expect(ring.statistics.drained == 4 && ring.statistics.pending == 0)
    }

    @Test("a full ring drops and counts, never blocks, and takes records again once drained")
    func overflow() throws {
        let ring = try makeRing(records: 64)
        let results = (0..<100).map { ring.append(record($0)) }
        #expect(results.filter { $0 }.count == 64)
        #expect(ring.statistics.dropped == 36 && ring.statistics.appended == 64)
        let reader = UsageRing.Reader(ring)
        #expect(reader.peek(limit: 1_000, now: 0).map(\.at) == (0..<64).map(Int64.init))
        reader.commit()
        #expect(ring.append(record(500)))
        #expect(reader.peek(limit: 10, now: 0).map(\.at) == [500])
    }

    @Test("a reader killed mid-commit leaves freed cells behind the position: the next reader catches up")
    func readerDiedMidCommit() throws {
        let ring = try makeRing(records: 16)
        for number in 0..<6 { ring.append(record(number)) }
        ring.simulateReaderDyingMidCommit(count: 4) // records 0-3 stored, the position not moved on
        // Producers may already reuse the freed cells for the next lap.
        for number in 6..<18 { #expect(ring.append(record(number))) }
        let reader = UsageRing.Reader(ring)
        #expect(reader.peek(limit: 100, now: 0).map(\.at) == (4..<18).map(Int64.init))
        reader.commit()
        #expect(ring.statistics.pending == 0)
        #expect(ring.append(record(99)))
        #expect(reader.peek(limit: 100, now: 0).map(\.at) == [99])
    }

    @Test("records the database already has are freed unread, up to the first one not published")
    func markStored() throws {
        let ring = try makeRing(records: 16)
        #expect(ring.id == Array(0..<16))
        for number in 0..<5 { ring.append(record(number)) }
        let reader = UsageRing.Reader(ring)
        #expect(reader.position == 0)
        #expect(reader.markStored(through: 3) == 3)
        #expect(reader.position == 3 && ring.statistics.drained == 3)
        #expect(reader.peek(limit: 10, now: 0).map(\.at) == [3, 4])
        // Beyond what was published: stops there (an unpublished record was never stored).
        ring.simulateProducerDyingAfterClaim()
        #expect(reader.markStored(through: 10) == 2)
        #expect(reader.position == 5)
        // Cells a reader freed before dying count as stored too.
        let fresh = try makeRing(records: 16)
        for number in 0..<4 { fresh.append(record(number)) }
        fresh.simulateReaderDyingMidCommit(count: 2)
        let next = UsageRing.Reader(fresh)
        #expect(next.markStored(through: 3) == 3)
        #expect(next.peek(limit: 10, now: 0).map(\.at) == [3])
    }

    @Test("a cell claimed by a producer that died is skipped after the stall timeout, and counted as lost")
    func stalledProducer() throws {
        let ring = try makeRing(records: 16)
        ring.append(record(1))
        ring.simulateProducerDyingAfterClaim()
        ring.append(record(3))
        let reader = UsageRing.Reader(ring, stallTimeout: 2_000_000)
        #expect(reader.peek(limit: 10, now: 0).map(\.at) == [1])
        reader.commit()
        #expect(reader.peek(limit: 10, now: 1_000_000).isEmpty)   // stalled: wait
        #expect(reader.peek(limit: 10, now: 1_500_000).isEmpty)
        #expect(reader.peek(limit: 10, now: 3_100_000).map(\.at) == [3]) // given up on, moved past
        reader.commit()
        #expect(ring.statistics.lost == 1)
        // The skipped cell is usable again on the next lap.
        for number in 0..<16 { #expect(ring.append(record(10 + number))) }
        #expect(reader.peek(limit: 100, now: 4_000_000).count == 16)
    }
}

extension UsageRingTests {
    @Test("a cell a live process is still filling is not skipped until the give-up timeout")
    func slowProducer() throws {
        let ring = try makeRing(records: 16)
        ring.simulateProducerDyingAfterClaim(writer: getpid()) // alive: this process
        ring.append(record(2))
        let reader = UsageRing.Reader(ring, stallTimeout: 2_000_000, giveUpTimeout: 30_000_000)
        #expect(reader.peek(limit: 10, now: 0).isEmpty)
        #expect(reader.peek(limit: 10, now: 5_000_000).isEmpty)  // past the stall timeout, writer alive
        #expect(reader.peek(limit: 10, now: 31_000_000).map(\.at) == [2])
        reader.commit()
        #expect(ring.statistics.lost == 1)
    }
}

@Suite("Usage ring across fork", .serialized)
struct UsageRingForkTests {
    @Test("two processes appending concurrently: nothing lost, each producer's records in order")
    func concurrentProducers() throws {
        let ring = try makeRing(records: 4_096)
        let reader = UsageRing.Reader(ring)
        ring.append(record(0, producer: 9)) // warm the path the children take
        _ = reader.peek(limit: 1, now: 0)
        reader.commit()
        var children: [pid_t] = []
        children.reserveCapacity(2)
        let producers: [UInt8] = [1, 2]
        let gate = StartGate(children: producers.count)
        defer { gate.start() }
        for producer in producers {
            let child = Glibc.fork()
            try #require(child >= 0)
            if child == 0 {
                gate.awaitStart()
                for number in 0..<1_500 { ring.append(record(number, producer: producer)) }
                _exit(0)
            }
            children.append(child)
        }
        gate.start()
        for child in children {
            #expect(waitForChild(child) == .exited(0))
        }
        let out = reader.peek(limit: 10_000, now: 0)
        #expect(out.count == 3_000)
        for producer in [UInt8(1), 2] {
            #expect(out.filter { $0.keyID[0] == producer }.map(\.at) == (0..<1_500).map(Int64.init))
        }
    }
}
