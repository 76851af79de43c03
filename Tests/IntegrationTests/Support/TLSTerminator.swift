import EphemeralServers
import Foundation
import Synchronization

/// TLS in front of a plaintext server on loopback, for tests only: Tansu 0.6.0 serves no
/// TLS, so a Kafka session over TLS is proven through this terminator (librdkafka's side of
/// the handshake, CA and host-name verification included, is the real one). It is
/// python3's `ssl` and `asyncio` (python3 is already a setup dependency: Tansu comes from
/// PyPI), started as a child process.
struct TLSTerminator {
    let port: Int
    let process: ChildProcess

    private static let script = """
        import asyncio, ssl, sys
        port, upstream, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except Exception:
                pass
            finally:
                writer.close()
        async def handle(client_reader, client_writer):
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream)
            except Exception:
                client_writer.close()
                return
            await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
            async with server:
                await server.serve_forever()
        asyncio.run(main())
        """

    /// Listens on `port` with `certificatePath`/`keyPath` and forwards to `upstreamPort`.
    static func start(port: Int, upstreamPort: Int, certificatePath: String, keyPath: String, logPath: String) async throws -> TLSTerminator {
        let process = try ChildProcess(["/usr/bin/env", "python3", "-c", script, String(port), String(upstreamPort), certificatePath, keyPath],
                                       outputPath: logPath)
        // Generous: in the suite's opening minute python3's start (interpreter, ssl, asyncio)
        // once took over 15 s on the loaded 2-core host, with nothing wrong but the load.
        let exited = Mutex<Int32?>(nil)
        let listening = await eventually(timeout: .seconds(60)) {
            if isLoopbackPortOpen(port) { return true }
            if let status = process.exitStatusIfExited() { exited.withLock { $0 = status } }
            return exited.withLock { $0 } != nil
        }
        guard listening, exited.withLock({ $0 }) == nil else {
            process.signal(SIGKILL)
            let state = exited.withLock { $0 }.map { "it exited with status \($0)" } ?? "still not listening after 60 s"
            throw CheckerError("the TLS terminator did not listen on \(port) (\(state)): \(process.output.suffix(1_000))")
        }
        return TLSTerminator(port: port, process: process)
    }

    func stop() async {
        process.signal(SIGTERM)
        _ = await process.waitForExit(timeout: .seconds(10))
    }
}
