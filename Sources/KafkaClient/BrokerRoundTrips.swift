import Foundation

/// The produce round trip to one broker over the last statistics window, as librdkafka
/// measures it (request sent to response received): the broker's and the network's share
/// of commit→ack. The relay exports it (`outbox_relay_kafka_broker_rtt_seconds`), so a high
/// commit→ack with a low commit→capture can be pinned on the broker without a debug build.
public struct BrokerRoundTrip: Sendable, Equatable {
    /// librdkafka's name for the broker, `host:port/nodeid`.
    public var broker: String
    public var p50Seconds: Double
    public var p99Seconds: Double
    /// Round trips measured in the window.
    public var samples: Int
    // Made only by `BrokerRoundTrips.parse`: the memberwise initialiser stays internal.
}

/// Reads the round trips out of one librdkafka statistics document (the JSON the stats
/// callback receives every `statistics.interval.ms`). Pure.
public enum BrokerRoundTrips {
    private struct Document: Decodable {
        var brokers: [String: Broker]?
    }

    private struct Broker: Decodable {
        var name: String
        var nodeid: Int
        var rtt: Window?
    }

    /// librdkafka's rolling window, in microseconds.
    private struct Window: Decodable {
        var p50: Int64
        var p99: Int64
        var cnt: Int
    }

    /// Brokers with round trips in the window, by name. Bootstrap entries (no node id yet)
    /// and brokers without a request in the window are left out: they measured nothing.
    /// A document that does not parse gives none (statistics are advisory).
    public static func parse(_ json: some Collection<UInt8>) -> [BrokerRoundTrip] {
        guard let document = try? JSONDecoder().decode(Document.self, from: Data(json)) else { return [] }
        return (document.brokers ?? [:]).values.compactMap { broker in
            guard broker.nodeid >= 0, let rtt = broker.rtt, rtt.cnt > 0 else { return nil }
            return BrokerRoundTrip(broker: broker.name, p50Seconds: Double(rtt.p50) / 1e6,
                                   p99Seconds: Double(rtt.p99) / 1e6, samples: rtt.cnt)
        }.sorted { $0.broker < $1.broker }
    }
}
