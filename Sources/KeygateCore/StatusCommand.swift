import Posix
import SharedMemory

/// `keygate status`: reads the running pool's scoreboard.
public enum StatusReader {
    public enum Failure: Error, CustomStringConvertible {
        case notRunning(String)
        case unreadable(String)

        public var description: String {
            switch self {
            case .notRunning(let detail): return "keygate is not running (\(detail))"
            case .unreadable(let detail): return detail
            }
        }
    }

    public static func read(configuration: Configuration) throws(Failure) -> PoolReport {
        guard Server.runningMasterPID(pidFile: configuration.pidFilePath) != nil else {
            throw .notRunning("no live master in \(configuration.pidFilePath)")
        }
        do {
            let region = try SharedRegion.openReadOnly(path: configuration.scoreboardPath)
            let board = try Scoreboard.attach(region)
            // The shared segments are the pool user's (mode 0600): without them, slots only.
            let host = try? HostState.attachReadOnly(configuration)
            guard let report = PoolView(scoreboard: board, host: host).report() else { throw Failure.unreadable("empty scoreboard") }
            return report
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .unreadable("\(configuration.scoreboardPath): \(error)")
        }
    }
}
