/// Routes by method and path pattern. Patterns are literal segments and `{name}`
/// parameters: `/api/v1/admin/api-keys/{id}/rotate`.
public struct Router<Context>: Sendable {
    public typealias Handler = @Sendable (Request, Context) throws -> Response

    /// One registered route; `index` is stable for the life of the process (metrics use it).
    public struct Route: Sendable {
        public let method: String
        public let pattern: String
        public let index: Int
        @usableFromInline let segments: [Segment]
        public let handler: Handler
    }

    @usableFromInline
    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    /// What a lookup found.
    public enum Match {
        case found(Route, parameters: [String: String])
        case notFound
        case methodNotAllowed(allowed: [String])
    }

    public private(set) var routes: [Route] = []
    /// Routes whose pattern has no parameter, by path, when no parameterized route could
    /// match that path too: those paths are found with one hash lookup instead of a scan.
    @usableFromInline private(set) var exact: [String: [Int]] = [:]

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping Handler) {
        let segments = pattern.split(separator: "/").map { part -> Segment in
            if part.hasPrefix("{") && part.hasSuffix("}") {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .literal(String(part))
        }
        routes.append(Route(method: method, pattern: pattern, index: routes.count, segments: segments, handler: handler))
        exact = Self.exactIndex(routes)
    }

    /// Literal-only patterns no parameterized pattern can also match (so a hash lookup
    /// gives the same answer as the scan in registration order).
    static func exactIndex(_ routes: [Route]) -> [String: [Int]] {
        var index: [String: [Int]] = [:]
        let parameterized = routes.filter { $0.segments.contains { if case .parameter = $0 { return true } else { return false } } }
        for route in routes where !parameterized.contains(where: { $0.index == route.index }) {
            let shadowed = parameterized.contains { other in
                other.segments.count == route.segments.count && zip(other.segments, route.segments).allSatisfy { pair in
                    if case .parameter = pair.0 { return true }
                    return pair.0 == pair.1
                }
            }
            // "/" + segments joined: the spelling a request uses for this pattern.
            if !shadowed { index["/" + route.pattern.split(separator: "/").joined(separator: "/"), default: []].append(route.index) }
        }
        return index
    }

    public mutating func get(_ pattern: String, _ handler: @escaping Handler) { add("GET", pattern, handler) }
    public mutating func post(_ pattern: String, _ handler: @escaping Handler) { add("POST", pattern, handler) }
    public mutating func put(_ pattern: String, _ handler: @escaping Handler) { add("PUT", pattern, handler) }
    public mutating func patch(_ pattern: String, _ handler: @escaping Handler) { add("PATCH", pattern, handler) }
    public mutating func delete(_ pattern: String, _ handler: @escaping Handler) { add("DELETE", pattern, handler) }

    /// Finds the route for `method` and the percent-encoded `path`. HEAD matches GET.
    /// Inlinable so callers get it specialised for their context type (no generic
    /// metadata lookups on the request path).
    @inlinable
    public func match(method: String, path: String) -> Match {
        if let candidates = exact[path] {
            var allowed: [String] = []
            for index in candidates {
                let route = routes[index]
                if route.method == method || (method == "HEAD" && route.method == "GET") { return .found(route, parameters: [:]) }
                if !allowed.contains(route.method) { allowed.append(route.method) }
            }
            if allowed.contains("GET") && !allowed.contains("HEAD") { allowed.append("HEAD") }
            return .methodNotAllowed(allowed: allowed)
        }
        // Split on the byte "/", not on Characters (a combining mark would glue to a "/").
        let parts = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map { Substring($0) }
        var allowed: [String] = []
        for route in routes {
            guard let parameters = Self.bind(route.segments, to: parts) else { continue }
            if route.method == method || (method == "HEAD" && route.method == "GET") {
                return .found(route, parameters: parameters)
            }
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        if allowed.isEmpty { return .notFound }
        if allowed.contains("GET") && !allowed.contains("HEAD") { allowed.append("HEAD") }
        return .methodNotAllowed(allowed: allowed)
    }

    /// Binds path parts to a pattern; nil if they do not fit or a parameter does not decode.
    @usableFromInline
    static func bind(_ segments: [Segment], to parts: [Substring]) -> [String: String]? {
        guard segments.count == parts.count else { return nil }
        var parameters: [String: String] = [:]
        for index in segments.indices {
            let part = parts[index]
            switch segments[index] {
            case .literal(let literal):
                guard part == literal else { return nil }
            case .parameter(let name):
                guard let value = QueryString.percentDecode(part), !value.isEmpty else { return nil }
                parameters[name] = value
            }
        }
        return parameters
    }
}
