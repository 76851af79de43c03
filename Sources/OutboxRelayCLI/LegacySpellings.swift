import ArgumentParser
import CLISettings
import RelayCore

/// Command-line spellings of earlier versions, translated so that existing scripts keep
/// working. Pure, so it tests without a process.
///
/// `--create-slot` took a value (`--create-slot false`); it is a flag pair now
/// (`--create-slot` / `--no-create-slot`). A following true/false word (or `=value`) is
/// folded into the matching flag; any other value is an error naming the new spelling.
enum LegacySpellings {
    /// Boolean settings that became flag pairs.
    static let booleanFlags = ["create-slot"]

    static func translate(_ arguments: [String]) throws -> [String] {
        var out: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" { out += arguments[(index - 1)...]; break }
            guard let name = booleanFlags.first(where: { argument == "--\($0)" || argument.hasPrefix("--\($0)=") }) else {
                out.append(argument)
                continue
            }
            var value: String?
            if let eq = argument.firstIndex(of: "=") {
                value = String(argument[argument.index(after: eq)...])
            } else if index < arguments.count, Settings.parseBool(arguments[index]) != nil {
                value = arguments[index]
                index += 1
            }
            guard let value else { out.append(argument); continue }
            guard let enabled = Settings.parseBool(value) else {
                throw ValidationError("--\(name)=\(value): --\(name) is a flag now. Fix: write --\(name) or --no-\(name).")
            }
            out.append(enabled ? "--\(name)" : "--no-\(name)")
        }
        return out
    }
}
