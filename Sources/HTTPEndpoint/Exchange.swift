#if canImport(Glibc)
import Glibc
#endif

/// One connection's request and response: what it has received, what is left to send, and
/// when it must be done. Its socket is non-blocking; `advance` does what the socket is ready for.
struct Exchange {
    let fd: Int32
    let deadline: ContinuousClock.Instant
    private var received: [UInt8] = []
    /// The response, once the request head is complete.
    private(set) var reply: [UInt8]?
    private var sent = 0

    init(fd: Int32, deadline: ContinuousClock.Instant) {
        self.fd = fd
        self.deadline = deadline
    }

    /// Reads (or writes) what the socket allows; false when the exchange is over: the
    /// response is out, or the client left or failed.
    mutating func advance(routes: Routes, headLimit: Int, buffer: inout [UInt8]) -> Bool {
        if reply == nil {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return false }
            if count < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
            received += buffer[0..<count]
            guard let answer = routes.answer(received, headLimit: headLimit) else { return true }
            reply = answer
            received = []
        }
        return writeReply()
    }

    /// Sends what is left of the reply; false once all of it is out or the socket failed.
    private mutating func writeReply() -> Bool {
        guard let reply else { return true }
        while sent < reply.count {
            let count = reply.withUnsafeBytes { send(fd, $0.baseAddress! + sent, reply.count - sent, Int32(MSG_NOSIGNAL)) }
            if count > 0 {
                sent += count
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
            }
        }
        return false
    }

    /// Closes without a reset: the client's unread bytes (headers past the head limit, a
    /// request body) would otherwise make the kernel send RST, which can destroy the response
    /// before the client reads it.
    func close() {
        shutdown(fd, Int32(SHUT_WR))
        // Bounded, so a client that keeps sending cannot hold the server's thread here.
        var scratch = [UInt8](repeating: 0, count: 4_096)
        for _ in 0..<16 {
            let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count <= 0 { break }
        }
        Glibc.close(fd)
    }
}
