import RelayCore

/// Resolves settings with the documented precedence: command-line flags, then
/// environment variables (`OUTBOX_RELAY_<NAME>`, upper-case, `-` as `_`), then the config
/// file (`name = value` lines, `#` comments), then the default. Pure: the caller passes the
/// three sources in, and every parse error names the setting, where the value came from,
/// and what is accepted.
///
/// Why not apple/swift-configuration (1.4.0 evaluated for this): its readers pull the keys
/// the code asks for and never see the others, so the unknown-setting error with a
/// suggestion (a typo must not fall back to a default) would stay ours; it parses a
/// `Duration` from whole seconds only and has no sizes, so `250ms`, `7d` and `8MiB` would
/// stay ours; its files are JSON, YAML, plist or `.env` (`KEY=value`), so every existing
/// `name = value` config file would break; and argv belongs to ArgumentParser here.
/// Origins and redaction it does offer, but `--print-config` walks our catalog anyway.
/// Adopting it would add a dependency and keep all of this code.
public struct Settings: Sendable {
    public enum Origin: Sendable, Equatable, CustomStringConvertible {
        case flag, environment(String), file(path: String, line: Int), defaultValue
        public var description: String {
            switch self {
            case .flag: return "command-line flag"
            case .environment(let name): return "environment variable \(name)"
            case .file(let path, let line): return "\(path) line \(line)"
            case .defaultValue: return "default"
            }
        }
    }

    public static let environmentPrefix = "OUTBOX_RELAY_"
    private var values: [String: (value: String, origin: Origin)] = [:]

    /// - Parameters:
    ///   - known: every valid setting name; unknown names in the file or the environment are errors (typos must not be silently ignored).
    public init(flags: [String: String], environment: [String: String], fileText: String?, filePath: String = "config file",
                known: Set<String>) throws(SettingsError) {
        if let fileText {
            for (index, rawLine) in fileText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingWhitespace()
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let eq = line.firstIndex(of: "=") else {
                    throw SettingsError(setting: nil, "\(filePath) line \(index + 1): expected `name = value`, got \(TopicRouter.printable(String(line)))")
                }
                let name = line[..<eq].trimmingWhitespace()
                var value = line[line.index(after: eq)...].trimmingWhitespace()
                if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
                guard known.contains(String(name)) else {
                    throw SettingsError(setting: String(name), "\(filePath) line \(index + 1): unknown setting \"\(name)\"\(Settings.suggestion(for: String(name), in: known))")
                }
                values[String(name)] = (String(value), .file(path: filePath, line: index + 1))
            }
        }
        for (variable, value) in environment where variable.hasPrefix(Settings.environmentPrefix) {
            let name = variable.dropFirst(Settings.environmentPrefix.count).lowercased().replacingAll("_", with: "-")
            guard known.contains(name) else {
                throw SettingsError(setting: name, "environment variable \(variable) is not a setting\(Settings.suggestion(for: name, in: known))")
            }
            values[name] = (value, .environment(variable))
        }
        for (name, value) in flags {
            precondition(known.contains(name), "flag \(name) missing from the settings catalog")
            values[name] = (value, .flag)
        }
    }

    public static func environmentName(_ setting: String) -> String {
        environmentPrefix + setting.uppercased().replacingAll("-", with: "_")
    }

    public func origin(_ name: String) -> Origin { values[name]?.origin ?? .defaultValue }
    public func raw(_ name: String) -> String? { values[name]?.value }

    public func string(_ name: String, default fallback: String) -> String { values[name]?.value ?? fallback }
    public func optionalString(_ name: String) -> String? {
        guard let value = values[name]?.value, !value.isEmpty else { return nil }
        return value
    }

    /// `name`'s value read by `parse`; `fallback` when unset. A value `parse` refuses is an
    /// error naming the setting, the text as given, where it came from, and `expected`.
    private func parsed<T>(_ name: String, default fallback: T, expected: String, _ parse: (String) -> T?) throws(SettingsError) -> T {
        guard let (text, origin) = values[name] else { return fallback }
        guard let value = parse(text) else {
            throw SettingsError(setting: name, "\(name) = \(TopicRouter.printable(text)) (from \(origin)) \(expected)")
        }
        return value
    }

    public func int(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws(SettingsError) -> Int {
        try parsed(name, default: fallback, expected: "must be an integer in \(range.lowerBound)...\(range.upperBound)") { text in
            Int(text.replacingAll("_", with: "")).flatMap { range.contains($0) ? $0 : nil }
        }
    }

    public func bool(_ name: String, default fallback: Bool) throws(SettingsError) -> Bool {
        try parsed(name, default: fallback, expected: "must be true or false", Settings.parseBool)
    }

    /// true/yes/on/1 or false/no/off/0, any case.
    public static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }

    public func choice(_ name: String, default fallback: String, among options: [String]) throws(SettingsError) -> String {
        try parsed(name, default: fallback, expected: "must be one of \(options.joined(separator: ", "))") { options.contains($0) ? $0 : nil }
    }

    /// "250ms", "20s", "5m", "2h", "7d"; a bare number means seconds.
    public func duration(_ name: String, default fallback: Duration) throws(SettingsError) -> Duration {
        try parsed(name, default: fallback, expected: "is not a duration; use e.g. 250ms, 20s, 5m, 2h or 7d", Settings.parseDuration)
    }

    /// "512", "64KiB", "8MiB", "1GiB" (also kB/MB/GB as powers of 1024).
    public func bytes(_ name: String, default fallback: Int) throws(SettingsError) -> Int {
        try parsed(name, default: fallback, expected: "is not a size; use e.g. 65536, 64KiB or 8MiB", Settings.parseBytes)
    }

    /// Comma-separated list; empty items dropped.
    public func list(_ name: String) -> [String] {
        (values[name]?.value ?? "").split(separator: ",").map { String($0.trimmingWhitespace()) }.filter { !$0.isEmpty }
    }

    /// Comma-separated `key=value` pairs.
    public func map(_ name: String) throws(SettingsError) -> [String: String] {
        var out: [String: String] = [:]
        for item in list(name) {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw SettingsError(setting: name, "\(name): \(TopicRouter.printable(item)) (from \(origin(name))) must look like key=value")
            }
            out[String(item[..<eq]).trimmingWhitespace().description] = String(item[item.index(after: eq)...]).trimmingWhitespace().description
        }
        return out
    }

    public static func parseDuration(_ text: String) -> Duration? {
        let t = text.trimmingWhitespace().lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let number = Double(t.dropLast(suffix.count)), number >= 0, number.isFinite else { return nil }
            return .nanoseconds(Int64(number * scale * 1e9))
        }
        guard let seconds = Double(t), seconds >= 0, seconds.isFinite else { return nil }
        return .nanoseconds(Int64(seconds * 1e9))
    }

    public static func parseBytes(_ text: String) -> Int? {
        let t = text.trimmingWhitespace().lowercased()
        let units: [(String, Int)] = [("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("b", 1)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let number = Int(t.dropLast(suffix.count).trimmingWhitespace()), number >= 0 else { return nil }
            return number * scale
        }
        guard let number = Int(t), number >= 0 else { return nil }
        return number
    }

    static func suggestion(for name: String, in known: Set<String>) -> String {
        let close = known.filter { $0.hasPrefix(String(name.prefix(4))) }.sorted()
        return close.isEmpty ? "" : " (did you mean \(close.prefix(3).joined(separator: ", "))?)"
    }
}

public struct SettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    public var setting: String?
    public var message: String
    public init(setting: String?, _ message: String) { self.setting = setting; self.message = message }
    public var description: String { message }
}

extension StringProtocol {
    func trimmingWhitespace() -> Substring {
        let s = Substring(self)
        guard let start = s.firstIndex(where: { !$0.isWhitespace }) else { return s[s.endIndex...] }
        let end = s.lastIndex(where: { !$0.isWhitespace })!
        return s[start...end]
    }

    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for ch in self { if ch == target { out += replacement } else { out.append(ch) } }
        return out
    }
}
