/// An ordered list of header fields with case-insensitive lookup.
public struct HTTPHeaders: Sendable, Equatable, Sequence {
    /// One `name: value` line. A named struct rather than a tuple: arrays of it are
    /// copied and destroyed by specialised code, not through runtime type metadata.
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var fields: [Field] = []

    public init() {}

    /// One field.
    public init(_ name: String, _ value: String) {
        add(name, value)
    }

    public init(_ fields: [(String, String)]) {
        self.fields = fields.map { Field(name: $0.0, value: $0.1) }
    }

    /// The first value of `name`, compared case-insensitively.
    public subscript(name: String) -> String? {
        for field in fields where field.name.caseInsensitiveEquals(name) { return field.value }
        return nil
    }

    /// Adds a field, keeping any existing ones of the same name.
    public mutating func add(_ name: String, _ value: String) {
        // Most messages carry a handful of fields: one allocation, no regrowth.
        if fields.capacity == 0 { fields.reserveCapacity(4) }
        fields.append(Field(name: name, value: value))
    }

    /// Replaces every field called `name` with one holding `value`.
    public mutating func set(_ name: String, _ value: String) {
        if contains(name) { fields.removeAll { $0.name.caseInsensitiveEquals(name) } }
        add(name, value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public func makeIterator() -> IndexingIterator<[Field]> {
        fields.makeIterator()
    }
}

extension String {
    /// ASCII case-insensitive equality (header names are ASCII).
    public func caseInsensitiveEquals(_ other: String) -> Bool {
        var a = self, b = other
        return a.withUTF8 { x in
            b.withUTF8 { y in
                guard x.count == y.count else { return false }
                for index in 0..<x.count {
                    let p = x[index], q = y[index]
                    if p == q { continue }
                    let lower = p | 0x20
                    guard lower == q | 0x20, lower >= 0x61, lower <= 0x7a else { return false }
                }
                return true
            }
        }
    }
}
