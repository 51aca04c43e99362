import Posix

public enum LogLevel: String, Sendable, Comparable, CaseIterable {
    case debug, info, warning, error

    private var rank: Int { Self.allCases.firstIndex(of: self) ?? 0 }
    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rank < rhs.rank }
}

/// logfmt lines on fd 2: `level=info pid=12 component=master msg="…"`. Never given a
/// key, a pepper or a password: callers pass ids and prefixes only.
public struct Logger: Sendable {
    public let level: LogLevel
    public let component: String

    public init(level: LogLevel, component: String) {
        self.level = level
        self.component = component
    }

    public func log(_ messageLevel: LogLevel, _ message: String, _ fields: [(String, String)] = []) {
        guard messageLevel >= level else { return }
        var line = "ts=\(Timestamp.rfc3339(microseconds: Clock.wallMicroseconds())) level=\(messageLevel.rawValue) pid=\(ProcessControl.currentPID) component=\(component) msg=\(Self.quote(message))"
        for (key, value) in fields { line += " \(key)=\(Self.quote(value))" }
        StandardError.write(line)
    }

    public func debug(_ message: String, _ fields: [(String, String)] = []) { log(.debug, message, fields) }
    public func info(_ message: String, _ fields: [(String, String)] = []) { log(.info, message, fields) }
    public func warning(_ message: String, _ fields: [(String, String)] = []) { log(.warning, message, fields) }
    public func error(_ message: String, _ fields: [(String, String)] = []) { log(.error, message, fields) }

    static func quote(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if scalar.value < 0x20 { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}
