import ArgumentParser

/// `--set name=value` (repeatable): any catalogued setting without a dedicated flag.
struct SetOptions: ParsableArguments {
    @Option(name: .customLong("set"), help: ArgumentHelp("Any setting as name=value (repeatable), e.g. --set sweeper-interval=5s.", valueName: "name=value"))
    var assignments: [String] = []

    func flags() throws -> [String: String] {
        var out: [String: String] = [:]
        for assignment in assignments {
            guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
                throw ValidationError("--set \(assignment): expected name=value.")
            }
            let name = String(assignment[..<eq])
            guard SettingsCatalog.names.contains(name) else {
                throw ValidationError("--set \(name): unknown setting. Known settings: \(SettingsCatalog.all.map(\.name).joined(separator: ", ")).")
            }
            out[name] = String(assignment[assignment.index(after: eq)...])
        }
        return out
    }
}
