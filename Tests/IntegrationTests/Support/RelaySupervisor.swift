import EphemeralServers
import Foundation
import Synchronization

/// What systemd or Kubernetes do for a relay: start it, and start it again one second after
/// any exit, recording every exit status (a failover test checks that none was 78, the
/// halt that needs an operator). The only reaper of its processes.
final class RelaySupervisor: Sendable {
    private let statuses = Mutex<[Int32]>([])
    private let current = Mutex<ChildProcess?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let loop = Mutex<Task<Void, Never>?>(nil)

    /// `launch(n)` starts the n-th incarnation (0, 1, ...).
    init(launch: @escaping @Sendable (Int) throws -> ChildProcess) {
        let task = Task { [self] in
            var incarnation = 0
            while !stopping.load(ordering: .relaxed) {
                guard let process = try? launch(incarnation) else {
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                current.withLock { $0 = process }
                if stopping.load(ordering: .relaxed) { process.signal(SIGTERM) }  // a stop raced the launch
                var status: Int32?
                while status == nil {
                    status = await process.waitForExit(timeout: .seconds(1))
                }
                statuses.withLock { $0.append(status!) }
                incarnation += 1
                if !stopping.load(ordering: .relaxed) { try? await Task.sleep(for: .seconds(1)) }
            }
        }
        loop.withLock { $0 = task }
    }

    var exitStatuses: [Int32] { statuses.withLock { $0 } }

    /// SIGTERM to the running relay: the supervisor starts a new one (a restart).
    func restartCurrent() { current.withLock { $0 }?.signal(SIGTERM) }

    /// Stops supervising: SIGTERM, SIGKILL after `timeout`; returns every exit status, the
    /// last being the final stop's.
    func stop(timeout: Duration = .seconds(60)) async -> [Int32] {
        stopping.store(true, ordering: .relaxed)
        let process = current.withLock { $0 }
        process?.signal(SIGTERM)
        let task = loop.withLock { $0 }
        let killer = Task { [self] in
            try? await Task.sleep(for: timeout)
            current.withLock { $0 }?.signal(SIGKILL)
        }
        await task?.value
        killer.cancel()
        return exitStatuses
    }
}
