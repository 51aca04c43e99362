#if canImport(Glibc)
import Glibc
#endif

/// A process-shared, robust `pthread_mutex_t` living in shared memory.
///
/// Robust: when a process dies holding it (a worker `kill -9`ed mid-update), the next
/// locker gets `EOWNERDEAD` instead of waiting forever. `lock` then marks the mutex
/// consistent and reports `.ownerDied`, so the caller can repair whatever the dead
/// process may have left half-written before relying on it.
public struct RobustMutex: @unchecked Sendable {
    public enum Acquired { case clean, ownerDied }

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public static var byteCount: Int { MemoryLayout<pthread_mutex_t>.stride }

    /// Initialises a mutex at `address` (the creator, once, before other processes map it).
    public static func initialize(at address: UnsafeMutableRawPointer) -> RobustMutex {
        let mutex = address.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_setpshared(&attributes, Int32(PTHREAD_PROCESS_SHARED))
        pthread_mutexattr_setrobust(&attributes, Int32(PTHREAD_MUTEX_ROBUST))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        return RobustMutex(mutex: mutex)
    }

    /// A mutex some other process initialised at `address`.
    public static func attach(at address: UnsafeMutableRawPointer) -> RobustMutex {
        RobustMutex(mutex: address.assumingMemoryBound(to: pthread_mutex_t.self))
    }

    private init(mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        self.mutex = mutex
    }

    /// Blocks until held. `.ownerDied`: the previous holder died inside its critical section.
    @discardableResult
    public func lock() -> Acquired {
        let result = pthread_mutex_lock(mutex)
        if result == EOWNERDEAD {
            pthread_mutex_consistent(mutex)
            return .ownerDied
        }
        return .clean
    }

    public func unlock() {
        pthread_mutex_unlock(mutex)
    }

    /// Runs `body` holding the lock; `repair` first when the previous holder died.
    @inline(__always)
    public func withLock<T>(repair: () -> Void, _ body: () throws -> T) rethrows -> T {
        if lock() == .ownerDied { repair() }
        defer { unlock() }
        return try body()
    }
}
