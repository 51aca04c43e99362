import Testing
@testable import HTTP

@Suite("QueryString")
struct QueryStringTests {
    @Test("name=value pairs are split on & and =")
    func basicPairs() {
        #expect(QueryString.parse("a=1&b=2") == ["a": "1", "b": "2"])
    }

    @Test("an empty query has no items")
    func emptyQuery() {
        #expect(QueryString.parse("").isEmpty)
        #expect(QueryString.parse("&&").isEmpty)
    }

    @Test("'+' is a space in names and values; %2B is a literal plus")
    func plusAsSpace() {
        #expect(QueryString.parse("full+name=Ada+Lovelace&op=1%2B1") == ["full name": "Ada Lovelace", "op": "1+1"])
    }

    @Test("percent-escapes are decoded as UTF-8")
    func percentEscapes() {
        #expect(QueryString.parse("q=caf%C3%A9&s=a%20b%26c%3Dd") == ["q": "café", "s": "a b&c=d"])
    }

    @Test("only the first '=' separates the value")
    func valueMayContainEquals() {
        #expect(QueryString.parse("token=a=b=c") == ["token": "a=b=c"])
    }

    @Test("a name without '=' has an empty value")
    func nameWithoutValue() {
        #expect(QueryString.parse("flag&x=1") == ["flag": "", "x": "1"])
        #expect(QueryString.parse("flag=") == ["flag": ""])
    }

    @Test("for a repeated name the first occurrence wins")
    func firstWins() {
        #expect(QueryString.parse("ms=1&ms=2&ms=3") == ["ms": "1"])
        #expect(QueryString.parse("a=x&a+=y&a=z")["a"] == "x")
    }

    @Test("pairs whose value or name does not decode are dropped; the rest survive")
    func malformedPairsDropped() {
        #expect(QueryString.parse("a=%zz&b=ok") == ["b": "ok"])
        #expect(QueryString.parse("%zz=1&b=ok") == ["b": "ok"])
        #expect(QueryString.parse("a=%FF&b=%C3%A9") == ["b": "é"])
    }

    @Test("a dropped first occurrence does not shadow a valid later one")
    func droppedDoesNotShadow() {
        #expect(QueryString.parse("a=%zz&a=2") == ["a": "2"])
    }

    @Test("percentDecode decodes escapes of either case", arguments: [
        ("abc", "abc"),
        ("%41%42%43", "ABC"),
        ("%e2%82%ac", "€"),
        ("%E2%82%AC", "€"),
        ("100%25", "100%"),
        ("", ""),
        ("a+b", "a+b"),
    ])
    func percentDecodeValid(input: String, expected: String) {
        #expect(QueryString.percentDecode(Substring(input)) == expected)
    }

    @Test("percentDecode turns '+' into a space only when asked")
    func plusFlag() {
        #expect(QueryString.percentDecode("a+b", plusAsSpace: false) == "a+b")
        #expect(QueryString.percentDecode("a+b", plusAsSpace: true) == "a b")
        #expect(QueryString.percentDecode("a%2Bb", plusAsSpace: true) == "a+b")
    }

    @Test("malformed escapes give nil", arguments: ["%", "%4", "abc%", "%G0", "%0G", "%%41", "% 41", "%-1"])
    func malformedEscape(input: String) {
        #expect(QueryString.percentDecode(Substring(input)) == nil)
    }

    @Test("escapes that are not UTF-8 give nil", arguments: [
        "%FF", "%C3", "%C3%28", "%80", "%ED%A0%80", "%C0%AF", "ok%E2%82",
    ])
    func invalidUTF8(input: String) {
        #expect(QueryString.percentDecode(Substring(input)) == nil)
    }

    @Test("%00 decodes to a NUL character rather than ending the string")
    func nulByte() {
        #expect(QueryString.percentDecode("a%00b") == "a\u{0}b")
    }

    @Test("non-ASCII text that is already UTF-8 passes through")
    func rawUnicode() {
        #expect(QueryString.percentDecode("żółw") == "żółw")
    }
}

@Suite("HTTPHeaders")
struct HTTPHeadersTests {
    @Test("lookup ignores ASCII case")
    func caseInsensitiveLookup() {
        let headers = HTTPHeaders([("Content-Type", "application/json")])
        #expect(headers["content-type"] == "application/json")
        #expect(headers["CONTENT-TYPE"] == "application/json")
        #expect(headers["Content-Type"] == "application/json")
        #expect(headers.contains("cOnTeNt-TyPe"))
    }

    @Test("lookup does not confuse names that differ beyond case", arguments: [
        "Content-Typ", "Content-Types", "Content_Type", "Content-Typf", "",
    ])
    func noFalseMatches(name: String) {
        let headers = HTTPHeaders([("Content-Type", "x")])
        #expect(headers[name] == nil)
        #expect(!headers.contains(name))
    }

    @Test("case folding is limited to letters", arguments: [
        ("@", "`"), ("[", "{"), ("]", "}"), ("^", "~"), ("\\", "|"), ("-", "\r"),
    ])
    func nonLettersAreNotFolded(a: String, b: String) {
        // These pairs differ only in bit 0x20 but are not letters.
        let headers = HTTPHeaders([("X\(a)Y", "1")])
        #expect(headers["X\(b)Y"] == nil)
        #expect(headers["x\(a)y"] == "1")
    }

    @Test("the first of several fields with a name is returned")
    func firstValueWins() {
        var headers = HTTPHeaders()
        headers.add("Set-Cookie", "a=1")
        headers.add("set-cookie", "b=2")
        #expect(headers["SET-COOKIE"] == "a=1")
        #expect(headers.fields.count == 2)
    }

    @Test("set replaces every field of that name, whatever its case, and keeps others")
    func setReplaces() {
        var headers = HTTPHeaders([("X-A", "1"), ("Vary", "x"), ("x-a", "2"), ("X-B", "3")])
        headers.set("X-a", "new")
        #expect(headers["x-a"] == "new")
        #expect(headers.fields.filter { $0.name.lowercased() == "x-a" }.count == 1)
        #expect(headers["vary"] == "x")
        #expect(headers["X-B"] == "3")
        #expect(headers.fields.map(\.name) == ["Vary", "X-B", "X-a"])
    }

    @Test("set on a new name adds it")
    func setAdds() {
        var headers = HTTPHeaders()
        headers.set("Allow", "GET")
        #expect(headers.fields.count == 1)
        #expect(headers["allow"] == "GET")
    }

    @Test("iteration keeps insertion order")
    func ordered() {
        let headers = HTTPHeaders([("B", "2"), ("A", "1"), ("C", "3")])
        #expect(headers.map(\.name) == ["B", "A", "C"])
        #expect(headers.map(\.value) == ["2", "1", "3"])
    }

    @Test("equality compares names exactly, values and order")
    func equality() {
        #expect(HTTPHeaders([("A", "1")]) == HTTPHeaders([("A", "1")]))
        #expect(HTTPHeaders([("A", "1")]) != HTTPHeaders([("A", "2")]))
        #expect(HTTPHeaders([("A", "1"), ("B", "2")]) != HTTPHeaders([("B", "2"), ("A", "1")]))
        #expect(HTTPHeaders([("A", "1")]) != HTTPHeaders([("A", "1"), ("A", "1")]))
    }
}

