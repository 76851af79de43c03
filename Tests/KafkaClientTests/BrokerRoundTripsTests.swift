@testable import KafkaClient
import Testing

@Suite("Broker round trips from librdkafka statistics")
struct BrokerRoundTripsTests {
    /// The shape librdkafka 2.x emits, trimmed to what matters and a few neighbours: a
    /// bootstrap entry (node id -1), a broker with no request in the window, two that
    /// measured round trips (microseconds).
    static let document = """
        {"name":"outbox-relay#producer-1","type":"producer","ts":123,"brokers":{
          "GroupCoordinator":{"name":"GroupCoordinator","nodeid":-1,"rtt":{"min":0,"max":0,"avg":0,"p50":0,"p99":0,"cnt":0}},
          "sasl_ssl://k1:9093/bootstrap":{"name":"sasl_ssl://k1:9093/bootstrap","nodeid":-1,"rtt":{"p50":900,"p99":900,"cnt":1}},
          "k2:9092/2":{"name":"k2:9092/2","nodeid":2,"state":"UP","rtt":{"min":310,"max":4572,"avg":420,"p50":315,"p99":1447,"cnt":4502}},
          "k1:9092/1":{"name":"k1:9092/1","nodeid":1,"state":"UP","rtt":{"min":300,"max":900,"avg":500,"p50":583,"p99":1551,"cnt":12983}},
          "k3:9092/3":{"name":"k3:9092/3","nodeid":3,"state":"UP","rtt":{"p50":0,"p99":0,"cnt":0}}
        },"topics":{}}
        """

    @Test("brokers that measured round trips, in seconds, by name; bootstrap entries and idle brokers left out")
    func parsesTheWindow() {
        #expect(BrokerRoundTrips.parse(Array(Self.document.utf8)) == [
            BrokerRoundTrip(broker: "k1:9092/1", p50Seconds: 0.000583, p99Seconds: 0.001551, samples: 12983),
            BrokerRoundTrip(broker: "k2:9092/2", p50Seconds: 0.000315, p99Seconds: 0.001447, samples: 4502),
        ])
    }

    @Test("a document without brokers, or one that does not parse, gives none", arguments: [
        #"{"name":"p","type":"producer"}"#, #"{"brokers":{}}"#, "not json", "", #"{"brokers":{"b":{"name":"b"}}}"#,
    ])
    func nothingToReport(_ json: String) {
        #expect(BrokerRoundTrips.parse(Array(json.utf8)).isEmpty)
    }
}
