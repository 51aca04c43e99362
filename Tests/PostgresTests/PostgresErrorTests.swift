import Testing
@testable import Postgres

@Suite("PostgresError")
struct PostgresErrorTests {
    @Test("only a server that cannot be reached is an outage; one refusing writes still answers reads")
    func unreachableOrRefusing() {
        for state in [nil, "08006", "08001", "57P01", "57P03", "53300"] {
            #expect(PostgresError(sqlState: state, message: "").isUnreachable, "\(state ?? "no SQLSTATE")")
        }
        for state in ["25006", "53100", "53200", "57014", "55P03", "40001", "23505", "XX000"] {
            #expect(!PostgresError(sqlState: state, message: "").isUnreachable, "\(state)")
        }
    }
}
