import Foundation
import Logging
import Metrics
import PostgresClient
import RelayCore

/// The I/O half of `ListenProbe`: sends the probes through the reading connection, picks
/// them out of what the listening connection receives, and says what it finds (a warning
/// with the fix, the `outbox_relay_notify_listen_working` gauge, the health detail).
/// Used by notify capture's thread only.
final class ListenCheck {
    private var probe = ListenProbe()
    private let channel: String
    private let logger: Logger
    private let gauge: Gauge
    private let health: RelayHealth
    private let healthDetail: String
    private let origin = ContinuousClock.now

    init(channel: String, slot: String, logger: Logger, metrics: RelayMetrics, health: RelayHealth, healthDetail: String) {
        self.channel = channel; self.logger = logger; self.health = health; self.healthDetail = healthDetail
        gauge = metrics.notifyListenWorking(slot: slot)
    }

    private var now: Duration { ContinuousClock.now - origin }

    /// The last probe did not arrive: no ring ends a sleep (`DeafPolling` then shortens it).
    var isDeaf: Bool { probe.verdict == .deaf }

    /// Sends a probe if one is due, and judges one that is late. Called once per loop turn.
    /// While the relay is busy it does not wait on `listener`, so this also takes what has
    /// arrived there; dropping a writer's ring there is safe, since a read follows.
    func tick(reader: PGConnection, listener: PGConnection) throws {
        _ = hasRings(try listener.waitForNotificationsBlocking(timeout: .zero))
        if let payload = probe.due(now: now) {
            try reader.queryBlocking("SELECT pg_notify($1, $2)", [.text(channel), .text(payload)])
            probe.sent(at: now)
        }
        let before = probe.verdict
        probe.check(now: now)
        report(from: before)
    }

    /// Takes the probes out of `notifications`; returns whether any writer rang.
    func hasRings(_ notifications: [PGNotification]) -> Bool {
        let before = probe.verdict
        let rings = notifications.filter { !probe.received(payload: $0.payload) }
        report(from: before)
        return !rings.isEmpty
    }

    private func report(from before: ListenProbe.Verdict) {
        guard probe.verdict != before else { return }
        switch probe.verdict {
        case .working:
            gauge.record(1)
            health.set(.streaming, healthDetail)
            if before == .deaf { logger.notice("notify capture: LISTEN works again; writers' notifications arrive", metadata: ["channel": "\(channel)"]) }
        case .deaf:
            gauge.record(0)
            health.set(.streaming, healthDetail + "; doorbell deaf: LISTEN receives nothing, rows are found by polling the slot")
            logger.warning("""
                notify capture: LISTEN receives nothing on this connection (a notification the relay sent itself did not \
                arrive within \(ListenProbe.timeout)); the relay polls the slot instead: every \(DeafPolling.fastInterval) \
                while rows come, backing off to notify-fallback-interval when quiet, so the first row after a quiet spell \
                waits up to that interval. A transaction pooler (PgBouncer pool_mode = transaction) does this: LISTEN is \
                session state it does not keep.
                """, metadata: ["channel": "\(channel)",
                                "fix": "set notify-listen-url to a direct connection to PostgreSQL (or a session-pooling pool, PgBouncer pool_mode = session); database-url may stay on the transaction pool"])
        case .unknown:
            break
        }
    }
}
