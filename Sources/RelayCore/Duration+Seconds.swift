extension Duration {
    /// The duration in (fractional) seconds, for SQL intervals and Foundation APIs.
    public var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
