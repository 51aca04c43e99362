#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address or CIDR block, for `allowed_ips`.
struct IPNetwork: Equatable {
    let address: [UInt8]
    let prefixLength: Int

    /// `text` when it is a single IP address (what an `inet` column takes), else nil: a
    /// client address nginx passes is not always one (`unix:` behind a unix-socket listener),
    /// and a failed cast would refuse the whole change it is recorded with.
    static func singleAddress(_ text: String) -> String? {
        IPNetwork(text) != nil && !text.contains("/") ? text : nil
    }

    /// `10.0.0.0/8`, `192.168.1.5`, `2001:db8::/32`, `::1`. An IPv4-mapped IPv6 block
    /// (`::ffff:10.0.0.0/104`, as PostgreSQL prints a mapped address stored as cidr) is
    /// the IPv4 block it maps, so it matches the IPv4 addresses nginx passes.
    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let (address, mapped) = Self.parse(String(parts[0])) else { return nil }
        let maximum = mapped ? 128 : address.count * 8
        var length = maximum
        if parts.count == 2 {
            // Digits only: Int("+8") would pass, and PostgreSQL's cidr refuses signs.
            guard (1...3).contains(parts[1].utf8.count), parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let given = Int(parts[1]), given <= maximum else { return nil }
            length = given
        }
        if mapped {
            // Shorter than /96 would reach past the mapped range into other IPv6 space.
            guard length >= 96 else { return nil }
            length -= 96
        }
        self.address = address
        prefixLength = length
    }

    static func parseAddress(_ text: String) -> [UInt8]? {
        parse(text)?.bytes
    }

    /// The address's bytes (an IPv4-mapped IPv6 address as its four IPv4 bytes), and
    /// whether it was written mapped.
    private static func parse(_ text: String) -> (bytes: [UInt8], mapped: Bool)? {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return (withUnsafeBytes(of: &v4) { Array($0) }, false)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return (Array(bytes[12...]), true) }
            return (bytes, false)
        }
        return nil
    }

    /// Whether an address bit beyond the prefix is set (`10.0.0.1/8`): PostgreSQL's cidr
    /// refuses such a block, so validation does first, naming the field.
    var hasHostBits: Bool {
        address.indices.contains { index in
            let covered = max(0, min(8, prefixLength - index * 8))
            return address[index] & ~UInt8(truncatingIfNeeded: 0xff << (8 - covered)) != 0
        }
    }

    /// Whether `addressText` lies inside this network.
    func contains(_ addressText: String) -> Bool {
        guard let candidate = Self.parseAddress(addressText) else { return false }
        return contains(candidate)
    }

    /// Whether all of `network` lies inside this network.
    func contains(_ network: IPNetwork) -> Bool {
        network.prefixLength >= prefixLength && contains(network.address)
    }

    private func contains(_ candidate: [UInt8]) -> Bool {
        guard candidate.count == address.count else { return false }
        var remaining = prefixLength
        for index in 0..<address.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if candidate[index] & mask != address[index] & mask { return false }
            remaining -= bits
        }
        return true
    }
}
