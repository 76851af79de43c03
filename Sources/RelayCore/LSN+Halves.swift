public import PGOutput

/// An LSN as the two 32-bit halves PostgreSQL prints (`high/low` in hex).
///
/// Prometheus sample values are float64, exact only up to 2^53; an LSN is 64 bits. Each
/// half fits a float64 exactly, so the relay exposes the confirmed LSN as two gauges and a
/// reader rebuilds it as `high * 2^32 + low` (or prints `high/low` in hex, as `pg_lsn` does).
extension LSN {
    public var high: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }
    public var low: UInt32 { UInt32(truncatingIfNeeded: rawValue) }

    public init(high: UInt32, low: UInt32) { self.init(UInt64(high) << 32 | UInt64(low)) }
}
