import KafkaClient
import Logging
import Testing

/// The producer against librdkafka's in-process mock cluster: broker errors on loopback,
/// no server process.
@Suite("Producer on the mock cluster")
struct MockClusterProducerTests {
    @Test("mock cluster: a retriable produce error is retried; the delivery succeeds")
    func mockClusterRetriable() async throws {
        let mock = try KafkaMockCluster()
        try mock.createTopic("mock.retry")
        mock.pushRequestErrors(.produce, [6, 7, 6])  // NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: mock.bootstrapServers),
                                         logger: Logger(label: "t"), onDelivery: { _ in })
        let report = try await producer.send(topic: "mock.retry", key: Array("k".utf8), value: Array("v".utf8))
        #expect(report.error == nil)
        await producer.close()
    }

    @Test("mock cluster: MSG_SIZE_TOO_LARGE is a permanent per-message error")
    func mockClusterPermanent() async throws {
        let mock = try KafkaMockCluster()
        try mock.createTopic("mock.big")
        mock.pushRequestErrors(.produce, [10])
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: mock.bootstrapServers),
                                         logger: Logger(label: "t"), onDelivery: { _ in })
        let error = await #expect(throws: KafkaError.self) {
            _ = try await producer.send(topic: "mock.big", key: Array("k".utf8), value: Array("v".utf8))
        }
        #expect(error?.name == "MSG_SIZE_TOO_LARGE")
        #expect(error?.isRetriable == false)
        await producer.close()
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension MockClusterProducerTests {
    /// A socket listening on 127.0.0.1:`port`, as another test's server would be.
    static func listen(on port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var reuse: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 1) == 0 else { close(fd); return -1 }
        return fd
    }

    /// librdkafka rebinds a mock broker's old port when it comes back up, and aborts the
    /// process when the port was taken meanwhile (a CI run lost a whole suite that way).
    @Test("a mock broker whose port was taken while it was down is refused with an error, not a process abort; once free it comes up")
    func mockBrokerPortTaken() throws {
        let mock = try KafkaMockCluster(brokers: 3)
        let port = try #require(mock.bootstrapServers.split(separator: ",")[1].split(separator: ":").last.flatMap { Int($0) })
        try mock.setBrokerDown(2)
        let squatter = Self.listen(on: port)
        try #require(squatter >= 0, "could not take port \(port)")
        let error = #expect(throws: KafkaError.self) { try mock.setBrokerUp(2) }
        #expect(error?.name == KafkaMockCluster.mockBrokerPortTaken, "\(String(describing: error))")
        #expect("\(String(describing: error))".contains("\(port)"))
        close(squatter)
        try mock.setBrokerUp(2)
    }
}
