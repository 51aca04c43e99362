import Synchronization

/// Every keygate segment begins with two words, a magic number and a layout version, so a
/// process attaching to it can tell what it is and which binary wrote it.
enum SegmentStamp {
    static func verify(_ region: SharedRegion, minimumSize: Int, magic: Int, version: Int, kind: String) throws(SegmentError) {
        guard region.size >= minimumSize else { throw .wrongKind(kind) }
        let words = region.base.assumingMemoryBound(to: Atomic<Int>.self)
        guard words[0].load(ordering: .acquiring) == magic else { throw .wrongKind(kind) }
        let found = words[1].load(ordering: .relaxed)
        guard found == version else { throw .layoutMismatch(found: found, expected: version) }
    }
}
