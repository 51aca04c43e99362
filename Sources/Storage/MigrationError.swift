import Postgres

public enum MigrationError: Error, CustomStringConvertible {
    case unreadable(String)
    case malformedFile(String, String)
    /// An applied migration's file changed since it was applied.
    case checksumMismatch(version: Int, name: String)
    /// The database has a version this binary has no file for.
    case unknownAppliedVersion(Int)
    case database(PostgresError)

    public var description: String {
        switch self {
        case .unreadable(let directory): return "cannot read migrations directory \(directory)"
        case .malformedFile(let name, let reason): return "migration \(name): \(reason)"
        case .checksumMismatch(let version, let name):
            return "migration \(version) (\(name)) was edited after it was applied; restore the file (a change needs a new migration)"
        case .unknownAppliedVersion(let version):
            return "the database has migration \(version) applied, which this keygate does not know (a newer keygate migrated it?)"
        case .database(let error): return "\(error)"
        }
    }
}
