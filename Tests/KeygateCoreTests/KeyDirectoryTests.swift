import Testing
import Posix
import SharedMemory
import Storage
@testable import KeygateCore

@Suite("KeyDirectory")
struct KeyDirectoryTests {
    private func record(name: String, active: Bool = true) -> KeyRecord {
        KeyRecord(
            id: "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f", name: name, keyPrefix: "mdw_live_abc", environment: "live",
            userID: nil, scopes: ["self"], allowedPaths: [], allowedIPs: [], limits: KeyLimits(), active: active,
            createdAt: 0, updatedAt: 0, expiresAt: nil, lastUsedAt: nil, lastUsedEndpoint: nil, requestCount: 0, revokedAt: nil, rotatedFrom: nil)
    }

    @Test("a changed cache entry is decoded afresh, never served from the worker's decoded copy")
    func changedEntryIsNotStale() throws {
        let cache = KeyCache.create(in: try SharedRegion.anonymous(size: KeyCache.byteCount(entries: 64, payloadCapacity: HostState.payloadCapacity)),
                                    entries: 64, payloadCapacity: HostState.payloadCapacity)
        let directory = KeyDirectory(cache: cache, keys: nil, configuration: Configuration())
        let hash = [UInt8](repeating: 7, count: 32)
        func put(_ record: KeyRecord) {
            #expect(cache.store(hash, payload: KeyRecordCodec.encode(record), now: Clock.monotonicMicroseconds(), ttl: 60_000_000, epoch: cache.epoch))
        }
        put(record(name: "first"))
        #expect(try directory.find(hash: hash, now: 0)?.name == "first")
        #expect(try directory.find(hash: hash, now: 0)?.name == "first") // reused copy
        put(record(name: "first", active: false)) // revoked elsewhere: same key, new bytes
        #expect(try directory.find(hash: hash, now: 0)?.active == false)
        put(record(name: "renamed"))
        #expect(try directory.find(hash: hash, now: 0)?.name == "renamed")
    }

    @Test("past its capacity the decoded set starts over and lookups stay right")
    func capacity() throws {
        let entries = 4 * KeyDirectory.decodedCapacity
        let cache = KeyCache.create(in: try SharedRegion.anonymous(size: KeyCache.byteCount(entries: entries, payloadCapacity: HostState.payloadCapacity)),
                                    entries: entries, payloadCapacity: HostState.payloadCapacity)
        let directory = KeyDirectory(cache: cache, keys: nil, configuration: Configuration())
        let count = KeyDirectory.decodedCapacity + 10
        for index in 0..<count {
            let hash = [UInt8](repeating: UInt8(index % 256), count: 31) + [UInt8(index / 256)]
            #expect(cache.store(hash, payload: KeyRecordCodec.encode(record(name: "key \(index)")), now: Clock.monotonicMicroseconds(),
                                ttl: 60_000_000, epoch: cache.epoch))
        }
        for round in 0..<2 {
            for index in 0..<count {
                let hash = [UInt8](repeating: UInt8(index % 256), count: 31) + [UInt8(index / 256)]
                #expect(try directory.find(hash: hash, now: 0)?.name == "key \(index)", "round \(round)")
            }
        }
    }
}
