import Testing
import Postgres

@Suite("PostgresCopyData")
struct PostgresCopyDataTests {
    @Test("fields are tab-separated, rows end in a newline, NULL is \\N, and \\, tab, newline, CR are escaped")
    func format() {
        var data = PostgresCopyData()
        data.append("a\tb\nc\rd\\e")
        data.appendNull()
        data.append(-42)
        data.endRow()
        data.append("ż")
        data.append(Array("x".utf8))
        data.endRow()
        #expect(String(decoding: data.bytes, as: UTF8.self) == "a\\tb\\nc\\rd\\\\e\t\\N\t-42\nż\tx\n")
    }
}
