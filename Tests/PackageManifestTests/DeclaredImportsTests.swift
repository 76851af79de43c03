import Foundation
import Testing

/// Every module a target imports from this package (or from a product the manifest uses)
/// is declared among that target's dependencies. SwiftPM builds an undeclared import when
/// another dependency happens to bring the module along, so the build alone never tells;
/// the link order and a later refactor do.
@Suite("Package manifest")
struct DeclaredImportsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("every import of a package module is a declared dependency of the importing target")
    func importsAreDeclared() throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let targets = ManifestTargets.parse(manifest)
        #expect(targets.count > 10, "the manifest parser found only \(targets.map(\.name))")
        let known = Set(targets.map(\.name)).union(targets.flatMap(\.products))
        var undeclared: [String] = []
        for target in targets {
            let folder = Self.root.appendingPathComponent(target.isTest ? "Tests" : "Sources").appendingPathComponent(target.name)
            let imported = try ManifestTargets.imports(under: folder)
            for module in imported.sorted() where known.contains(module) && module != target.name && !target.dependencies.contains(module) {
                undeclared.append("\(target.name) imports \(module)")
            }
        }
        #expect(undeclared.isEmpty, "declare these in Package.swift: \(undeclared)")
    }

    @Test("in KafkaClient only RDKafka/ touches librdkafka: the public types speak Swift")
    func librdkafkaStaysBehindTheSeam() throws {
        let folder = Self.root.appendingPathComponent("Sources/KafkaClient")
        var outside: [String] = []
        for case let file as URL in FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)!
            where file.pathExtension == "swift" && !file.path.contains("/RDKafka/") {
            if try ManifestTargets.imports(in: file).contains("CRdKafka") { outside.append(file.lastPathComponent) }
        }
        #expect(outside.isEmpty, "move the librdkafka calls of \(outside.sorted()) into an RDKafka* type in Sources/KafkaClient/RDKafka/")
    }
}

/// A reader of this package's manifest as written (`.target(name: …, dependencies: [...])`),
/// not a Swift parser: enough for the test above.
struct ManifestTargets {
    var name: String
    var isTest: Bool
    /// Target names and product names listed as dependencies.
    var dependencies: Set<String>
    /// The products among them (`.product(name: "Logging", …)`).
    var products: Set<String>

    static func parse(_ manifest: String) -> [ManifestTargets] {
        let text = Array(manifest)
        var result: [ManifestTargets] = []
        for opener in [".target(", ".executableTarget(", ".testTarget(", ".systemLibrary("] {
            var search = manifest.startIndex
            while let range = manifest.range(of: opener, range: search..<manifest.endIndex) {
                search = range.upperBound
                let start = manifest.distance(from: manifest.startIndex, to: range.upperBound)
                guard let end = closing(text, from: start, open: "(", close: ")") else { continue }
                let call = String(text[start..<end])
                guard let name = quoted(after: "name:", in: call) else { continue }
                var dependencies: Set<String> = []
                var products: Set<String> = []
                if let list = call.range(of: "dependencies:") {
                    let listText = Array(call[list.upperBound...])
                    if let open = listText.firstIndex(of: "["), let close = closing(listText, from: open + 1, open: "[", close: "]") {
                        let deps = String(listText[(open + 1)..<close])
                        dependencies = Set(allQuoted(deps))
                        products = Set(deps.components(separatedBy: ".product(").dropFirst().compactMap { quoted(after: "name:", in: $0) })
                    }
                }
                result.append(ManifestTargets(name: name, isTest: opener == ".testTarget(", dependencies: dependencies, products: products))
            }
        }
        return result
    }

    /// Module names imported by the Swift files below `folder`.
    static func imports(under folder: URL) throws -> Set<String> {
        var modules: Set<String> = []
        guard let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else { return modules }
        for case let file as URL in files where file.pathExtension == "swift" { modules.formUnion(try imports(in: file)) }
        return modules
    }

    /// Module names one Swift file imports.
    static func imports(in file: URL) throws -> Set<String> {
        var modules: Set<String> = []
        for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
            let words = line.split(separator: " ")
            guard let index = words.firstIndex(of: "import"),
                  words[..<index].allSatisfy({ ["@testable", "public", "internal", "package", "@_exported"].contains($0) }),
                  index + 1 < words.count else { continue }
            modules.insert(String(words[index + 1]))
        }
        return modules
    }

    private static func closing(_ text: [Character], from start: Int, open: Character, close: Character) -> Int? {
        var depth = 1
        var index = start
        var inString = false
        while index < text.count {
            let c = text[index]
            if c == "\"" { inString.toggle() }
            if !inString {
                if c == open { depth += 1 }
                if c == close { depth -= 1; if depth == 0 { return index } }
            }
            index += 1
        }
        return nil
    }

    private static func quoted(after label: String, in text: String) -> String? {
        guard let range = text.range(of: label) else { return nil }
        return allQuoted(String(text[range.upperBound...])).first
    }

    private static func allQuoted(_ text: String) -> [String] {
        text.split(separator: "\"", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }
}
