/// Whether notify capture's LISTEN works: the relay sends a notification to itself on its
/// channel and checks that it arrives.
///
/// LISTEN is session state. A transaction pooler (PgBouncer's `pool_mode = transaction`)
/// runs it on whichever server connection it lends for that one statement and then gives
/// that connection to others, so the relay's listening connection receives nothing: every
/// row waits for the fallback timer, and nothing else would say so. A probe at the start
/// of a session and every `interval` after it finds this out, and finds out when it starts
/// (a `database-url` moved behind a pooler while the relay runs shows at the next probe).
///
/// A pure state machine over a monotonic clock given as durations since any origin.
public struct ListenProbe: Sendable, Equatable {
    public enum Verdict: Sendable, Equatable {
        /// No probe has come back or timed out yet.
        case unknown
        case working
        /// A probe did not arrive within `timeout`.
        case deaf
    }

    /// How long a probe may take to arrive: far beyond a notification's milliseconds, and
    /// short enough to tell the operator soon after start.
    public static let timeout = Duration.seconds(5)
    /// How often a session probes again.
    public static let interval = Duration.seconds(60)
    /// Notification payloads that are probes (the outbox trigger's payload is empty).
    public static let payloadPrefix = "outbox-relay-listen-probe "

    public private(set) var verdict = Verdict.unknown
    /// The probe on its way: its number and when it was sent.
    private var outstanding: Int?
    private var sentAt: Duration?
    private var sent = 0

    public init() {}

    /// The payload of a probe to send now, if one is due (none on its way, and none sent
    /// for `interval`). The caller sends it, then reports `sent(at:)`.
    public func due(now: Duration) -> String? {
        if outstanding != nil { return nil }
        if let sentAt, now - sentAt < Self.interval { return nil }
        return Self.payloadPrefix + String(sent + 1)
    }

    /// The probe from `due` was sent at `now`.
    public mutating func sent(at now: Duration) {
        sent += 1
        outstanding = sent
        sentAt = now
    }

    /// A notification arrived; returns whether it is a probe (not a writer's ring). A probe
    /// that arrives makes the verdict `.working`, even one that came after its timeout.
    public mutating func received(payload: String) -> Bool {
        guard payload.hasPrefix(Self.payloadPrefix) else { return false }
        if let number = Int(payload.dropFirst(Self.payloadPrefix.count)), number == outstanding || verdict == .deaf {
            outstanding = nil
            verdict = .working
        }
        return true
    }

    /// Time passed: a probe on its way for longer than `timeout` makes the verdict `.deaf`.
    public mutating func check(now: Duration) {
        if outstanding != nil, let sentAt, now - sentAt >= Self.timeout {
            outstanding = nil
            verdict = .deaf
        }
    }
}
