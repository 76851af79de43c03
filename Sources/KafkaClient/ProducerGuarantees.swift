/// The librdkafka producer properties that carry the relay's guarantees (docs/architecture.md,
/// invariants 1 and 2: no loss, per-key order), and the check that refuses user properties
/// that would switch them off. Pure: a function of the properties, no I/O.
///
/// `KafkaProducer.defaultProperties` sets them; user properties win over defaults, so
/// without this check `--kafka-properties enable.idempotence=false` would silently turn a
/// retried batch into a duplicate or a reordering. Values equal to the safe ones are
/// accepted. Consumers' properties are not subject to it.
public enum ProducerGuarantees {
    /// A property the relay refuses, with the value given, why, and the fix.
    public struct Violation: Sendable, Equatable, CustomStringConvertible {
        /// The property as the user spelled it (including a `topic.` prefix).
        public var property: String
        public var value: String
        public var reason: String
        public var fix: String

        /// One sentence naming the property, the value and why it is refused.
        public var message: String {
            "kafka-properties: \(property)=\(Self.printable(value)) is refused: \(reason)."
        }

        public var description: String { "\(message) Fix: \(fix)" }

        /// Values are user input: keep control characters and length out of the log.
        static func printable(_ value: String) -> String {
            var out = ""
            for scalar in value.unicodeScalars.prefix(64) {
                out += scalar.properties.generalCategory == .control ? scalar.escaped(asASCII: true) : String(scalar)
            }
            return value.unicodeScalars.count > 64 ? out + "…" : out
        }
    }

    /// The first refused property (in name order, so the message is stable), or nil.
    public static func check(_ properties: [String: String]) -> Violation? {
        violations(properties).first
    }

    /// Every refused property, in name order.
    public static func violations(_ properties: [String: String]) -> [Violation] {
        properties.sorted { $0.key < $1.key }.compactMap { violation(property: $0.key, value: $0.value) }
    }

    /// librdkafka accepts topic-level properties on the global configuration with or
    /// without a `topic.` prefix (`topic.acks=1` sets `acks`), so both spellings count.
    static func violation(property: String, value: String) -> Violation? {
        let name = property.hasPrefix("topic.") ? String(property.dropFirst("topic.".count)) : property
        func refuse(_ reason: String, _ fix: String) -> Violation {
            Violation(property: property, value: value, reason: reason, fix: fix)
        }
        switch name {
        case "enable.idempotence":
            guard isTrue(value) else {
                return refuse("without the idempotent producer a retried batch can be written twice or out of order, which breaks per-key order",
                              "remove it; the relay needs enable.idempotence=true")
            }
        case "acks", "request.required.acks":
            guard isAll(value) else {
                return refuse("a message acknowledged before every in-sync replica has it is lost with its broker, after the relay has confirmed its LSN",
                              "remove it; the relay needs \(name)=all")
            }
        case "max.in.flight.requests.per.connection", "max.in.flight":
            guard let n = integer(value), (1...5).contains(n) else {
                return refuse("the idempotent producer keeps per-partition order only with 1 to 5 requests in flight",
                              "remove it (librdkafka then uses 5), or set \(name) from 1 to 5")
            }
        case "message.timeout.ms", "delivery.timeout.ms":
            guard integer(value) == 0 else {
                return refuse("a message that times out fails instead of waiting out a broker outage, and the rows after it can overtake it; the relay never gives up on a message",
                              "remove it; the relay needs \(name)=0 (no timeout)")
            }
        case "partitioner":
            guard value.trimmingASCIIWhitespace == "murmur2_random" else {
                return refuse("each key must stay on the partition the Java clients pick (murmur2); another partitioner moves keys (random even spreads one key over partitions), which breaks per-key order",
                              "remove it; the relay needs partitioner=murmur2_random")
            }
        default:
            break
        }
        return nil
    }

    /// librdkafka's booleans: `true`, `t`, `1` (case-insensitive), nothing else.
    private static func isTrue(_ value: String) -> Bool {
        ["true", "t", "1"].contains(value.lowercased())
    }

    /// `all` (case-insensitive) or -1.
    private static func isAll(_ value: String) -> Bool {
        value.lowercased() == "all" || integer(value) == -1
    }

    /// A plain decimal integer, surrounding whitespace allowed. librdkafka itself reads
    /// leading digits and ignores the rest (`5x` is 5); anything but a plain number is
    /// refused here rather than guessed at.
    private static func integer(_ value: String) -> Int? {
        Int(value.trimmingASCIIWhitespace)
    }
}

extension String {
    fileprivate var trimmingASCIIWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
