import Foundation
import KafkaClient
import Logging
import PGOutput
@testable import Relay
import RelayCore
import Synchronization
import Testing

/// Issue 16: "a notification that arrives while the relay drains is being lost". Notify
/// mode waits for every acknowledgement after each read of the slot; an acknowledgement
/// landing between the drain's check and its sleep was not signalled, so the drain slept
/// its full 50 ms and the next row waited with it. The hook lands the acknowledgement in
/// exactly that window, every time.
@Suite("Delivery line wake-ups")
struct DeliveryLineWakeTests {
    @Test("an acknowledgement between a drain's check and its sleep wakes the drain at once")
    func ackInTheWindow() throws {
        let rounds = 20
        let pending = Mutex<LSNTrackerTokenBox?>(nil)
        let lineBox = Mutex<DeliveryLine?>(nil)
        let line = DeliveryLine(
            configuration: RelayConfiguration(databaseURL: "postgresql://unused", kafka: KafkaConfiguration(bootstrapServers: "unused:9092")),
            logger: Logger(label: "wake-test"), metrics: RelayMetrics(), health: RelayHealth(),
            beforeSleep: {
                // The acknowledgement arrives now: after the check saw the event in flight,
                // before the sleep.
                guard let box = pending.withLock({ p -> LSNTrackerTokenBox? in defer { p = nil }; return p }),
                      let line = lineBox.withLock({ $0 }) else { return }
                line.acknowledge([(token: box.token, size: 100)], published: true)
            })
        lineBox.withLock { $0 = line }
        line.reset(confirmed: LSN(1_000))
        let start = ContinuousClock.now
        for round in 0..<rounds {
            line.beginTransaction(commitTime: 0)
            let token = try line.reserve(size: 100, whileBlocked: {})
            line.commitTransaction(endLSN: LSN(UInt64(2_000 + round * 100)))
            pending.withLock { $0 = LSNTrackerTokenBox(token: token) }
            #expect(line.drain(until: .now + .seconds(5)) == .drained)
        }
        let elapsed = ContinuousClock.now - start
        lineBox.withLock { $0 = nil }
        // A lost wake-up costs 50 ms per round (1 s in all); woken, a round takes microseconds.
        #expect(elapsed < .milliseconds(rounds * 50 / 2), "drains slept through acknowledgements: \(elapsed) for \(rounds) rounds")
    }
}

/// The tracker's token, boxed so the test's hook can hand it across threads.
struct LSNTrackerTokenBox: Sendable {
    let token: DeliveryStateMachine.Token
}
