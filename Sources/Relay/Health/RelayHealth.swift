import Foundation
import Synchronization

/// What `/healthz` and `/readyz` report. Written by the capture loop and the delivery
/// path, read by the HTTP server.
public final class RelayHealth: Sendable {
    public enum State: String, Sendable {
        case starting, streaming, standby, reconnecting, draining, stopped, halted
    }

    private let state = Mutex<(state: State, detail: String)>((.starting, ""))
    private let lastAckNanos = Atomic<Int64>(0)
    private let lastProgressNanos = Atomic<Int64>(0)
    private let inFlight = Atomic<Int>(0)
    private let batchedReads = Atomic<Bool>(false)
    private let publishedTotal = Atomic<Int>(0)
    /// Set while publishing is paused by an operator problem (a missing ACL or topic).
    private let pause = Mutex<String?>(nil)
    /// Set while a broker refuses the relay's SASL credentials or TLS settings
    /// (`KafkaSecurityFailure`); the flag keeps the per-acknowledgement check lock-free.
    private let kafkaRefusal = Mutex<String?>(nil)
    private let kafkaRefused = Atomic<Bool>(false)

    /// Rows acknowledged by the broker since start (the demo's progress line reads it).
    public var published: Int { publishedTotal.load(ordering: .relaxed) }
    public var eventsInFlight: Int { inFlight.load(ordering: .relaxed) }
    func notePublished(_ count: Int = 1) { publishedTotal.add(count, ordering: .relaxed) }

    public init() {}

    /// Stream mode: true while the relay is behind and reads WAL in batches (`CatchUpReads`).
    public var readingInBatches: Bool { batchedReads.load(ordering: .relaxed) }
    func setReadingInBatches(_ value: Bool) { batchedReads.store(value, ordering: .relaxed) }

    public func set(_ newState: State, _ detail: String = "") { state.withLock { $0 = (newState, detail) } }
    public var current: (state: State, detail: String) { state.withLock { $0 } }

    /// Publishing paused (`detail` names the topic, the problem and the fix) or resumed (nil).
    func setPause(_ detail: String?) { pause.withLock { $0 = detail } }
    /// Why publishing is paused, when it is: /readyz reports it.
    public var pausedBecause: String? { pause.withLock { $0 } }

    func noteAck() {
        lastAckNanos.store(Self.now(), ordering: .relaxed)
        // A delivery went through: the broker accepts this relay again.
        if kafkaRefused.load(ordering: .relaxed) {
            kafkaRefusal.withLock { $0 = nil }
            kafkaRefused.store(false, ordering: .releasing)
        }
    }

    /// A broker refused the credentials or the TLS handshake (`detail` names the cause and
    /// the fix). librdkafka keeps reconnecting at its own pace; the relay reports not ready
    /// until a delivery is acknowledged again.
    func noteKafkaRefusal(_ detail: String) {
        kafkaRefusal.withLock { $0 = detail }
        kafkaRefused.store(true, ordering: .releasing)
    }
    /// Why a broker refuses the relay, while it does: /readyz reports it.
    public var kafkaRefusedBecause: String? {
        kafkaRefused.load(ordering: .acquiring) ? kafkaRefusal.withLock { $0 } : nil
    }
    /// The capture loop is alive (read a message, a keepalive or timed out waiting).
    func noteProgress(inFlight count: Int) {
        lastProgressNanos.store(Self.now(), ordering: .relaxed)
        inFlight.store(count, ordering: .relaxed)
    }

    /// Alive unless halted: a halted relay needs an operator, and a restart loop won't help.
    public var isLive: Bool { current.state != .halted }

    /// Ready when streaming and acknowledging: the loop made progress recently, and when
    /// events are in flight, some delivery was acknowledged recently too.
    /// Not ready while publishing is paused for an operator problem, or while a broker
    /// refuses the relay's credentials or TLS settings.
    public func isReady(staleAfter: Duration = .seconds(15)) -> Bool {
        guard current.state == .streaming, pausedBecause == nil, !kafkaRefused.load(ordering: .acquiring) else { return false }
        let now = Self.now(), limit = Int64(staleAfter.components.seconds) * 1_000_000_000
        guard now - lastProgressNanos.load(ordering: .relaxed) < limit else { return false }
        if inFlight.load(ordering: .relaxed) > 0 {
            return now - lastAckNanos.load(ordering: .relaxed) < limit
        }
        return true
    }

    static func now() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds) }
}
