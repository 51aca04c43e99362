internal import CPostgreSQL

/// The libpq client library version, e.g. 150020 for 15.20.
public func libpqVersion() -> Int { Int(PQlibVersion()) }
