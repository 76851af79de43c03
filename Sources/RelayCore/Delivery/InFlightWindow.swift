/// Bounds what the relay has handed to Kafka but not yet seen acknowledged, by events and
/// bytes, so a slow broker turns into backpressure on WAL reading rather than memory growth.
public struct InFlightWindow: Sendable {
    /// The relay passes `max-in-flight` (its default is in the CLI's `SettingsCatalog`).
    public let maxEvents: Int
    /// The relay passes `max-in-flight-bytes` (default in `SettingsCatalog`).
    public let maxBytes: Int
    public private(set) var events = 0
    public private(set) var bytes = 0

    public init(maxEvents: Int, maxBytes: Int) {
        self.maxEvents = max(1, maxEvents)
        self.maxBytes = max(1, maxBytes)
    }

    /// Admits an event of `size` bytes if there is room. An event larger than the whole
    /// byte bound is admitted when the window is empty, or it could never be sent.
    public mutating func tryAcquire(bytes size: Int) -> Bool {
        let fits = events < maxEvents && (bytes + size <= maxBytes || events == 0)
        if fits { events += 1; bytes += size }
        return fits
    }

    public mutating func release(bytes size: Int) {
        events = max(0, events - 1)
        bytes = max(0, bytes - size)
    }

    public var isFull: Bool { events >= maxEvents || bytes >= maxBytes }
}
