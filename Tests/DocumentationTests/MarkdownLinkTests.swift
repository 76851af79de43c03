import Foundation
import Testing

@Suite("Markdown links: extraction and anchors")
struct MarkdownLinkExtractionTests {
    @Test("relative links are found; URLs, code and fenced blocks are not",
          arguments: [
              ("see [ops](docs/operations.md)", ["docs/operations.md"]),
              ("[a](x.md#part) and ![img](pic.png \"title\")", ["x.md#part", "pic.png"]),
              ("[same page](#guarantees)", ["#guarantees"]),
              ("[web](https://example.com/a.md) [mail](mailto:x@y.z)", []),
              ("`[not a link](nowhere.md)` but [this](here.md)", ["here.md"]),
              ("``[a](b.md) ` inside``", []),
              ("[label]: docs/architecture.md", ["docs/architecture.md"]),
              ("[angle](<docs/with space.md>)", ["docs/with space.md"]),
              ("[encoded](docs/with%20space.md)", ["docs/with space.md"]),
              ("no links here (really)", []),
          ])
    func extraction(line: String, expected: [String]) {
        let found = MarkdownLinks.relativeLinks(in: line).map { $0.path + ($0.anchor.map { "#\($0)" } ?? "") }
        #expect(found == expected)
    }

    @Test("links inside fenced code blocks are skipped, and line numbers count every line")
    func fences() {
        let text = "intro\n```sh\n[x](inside.md)\n```\n~~~\n[y](tilde.md)\n~~~\n[z](after.md)\n"
        #expect(MarkdownLinks.relativeLinks(in: text) == [MarkdownLink(path: "after.md", anchor: nil, line: 8)])
    }

    @Test("heading anchors follow GitHub's slugs, repeated headings numbered",
          arguments: [
              ("# outbox-relay", "outbox-relay"),
              ("## Running it for real", "running-it-for-real"),
              ("### The ops kit in `deploy/`", "the-ops-kit-in-deploy"),
              ("## Guarantees, and the tests that prove them", "guarantees-and-the-tests-that-prove-them"),
              ("## Commit → ack (p99)", "commit--ack-p99"),
          ])
    func slugs(heading: String, expected: String) {
        #expect(MarkdownLinks.anchors(in: heading) == [expected])
    }

    @Test("a repeated heading gets -1; a heading inside a code block defines nothing")
    func repeatedHeadings() {
        let text = "## Notes\ntext\n## Notes\n```\n# not a heading\n```\n#hashtag\n"
        #expect(MarkdownLinks.anchors(in: text) == ["notes", "notes-1"])
    }
}

/// Every relative link in the repository's Markdown (README.md, docs/, any other .md file)
/// names a file that exists, and an anchor its target's headings define.
@Suite("Markdown links resolve")
struct MarkdownLinkResolutionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The repository's Markdown files, skipping build output and hidden directories.
    static func markdownFiles() -> [URL] {
        let skipped: Set = [".build", "bench-results", "dist", "node_modules"]
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isDirectoryKey],
                                                          options: [.skipsHiddenFiles]) else { return [] }
        var files: [URL] = []
        for case let url as URL in walker {
            if skipped.contains(url.lastPathComponent) || url.lastPathComponent.hasPrefix(".build") {
                walker.skipDescendants()
                continue
            }
            if url.pathExtension == "md" { files.append(url) }
        }
        return files.sorted { $0.path < $1.path }
    }

    static func broken(in file: URL) throws -> [String] {
        let text = try String(contentsOf: file, encoding: .utf8)
        var problems: [String] = []
        for link in MarkdownLinks.relativeLinks(in: text) {
            let target = link.path.isEmpty ? file : file.deletingLastPathComponent().appendingPathComponent(link.path).standardizedFileURL
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: target.path, isDirectory: &isDirectory) else {
                problems.append("\(link): no such file")
                continue
            }
            guard let anchor = link.anchor, !anchor.isEmpty, !isDirectory.boolValue, target.pathExtension == "md" else { continue }
            let anchors = MarkdownLinks.anchors(in: try String(contentsOf: target, encoding: .utf8))
            if !anchors.contains(anchor) { problems.append("\(link): no heading makes the anchor #\(anchor)") }
        }
        return problems
    }

    @Test("every relative link in every Markdown file resolves (file, and anchor when given)")
    func allLinksResolve() throws {
        let files = Self.markdownFiles()
        #expect(files.contains { $0.lastPathComponent == "README.md" && $0.deletingLastPathComponent().path == Self.root.path },
                "the walk did not find README.md under \(Self.root.path)")
        for file in files {
            let relative = String(file.path.dropFirst(Self.root.path.count + 1))
            for problem in try Self.broken(in: file) {
                Issue.record("\(relative) \(problem)")
            }
        }
    }

    /// Files the build or a script writes, which a document may name but git does not hold.
    static let generatedDirectories = ["bench-results/", "dist/"]

    /// `.md` names written as plain text in Markdown prose and in the comments of Swift
    /// sources and scripts that name no file at the mentioning file's directory or the root.
    static func staleMentions(in file: URL) throws -> [String] {
        let text = try String(contentsOf: file, encoding: .utf8)
        let lines = switch file.pathExtension {
        case "md": MarkdownLinks.proseLines(of: text)
        case "swift": MarkdownMentions.commentLines(of: text, hashComments: false)
        default: MarkdownMentions.commentLines(of: text, hashComments: true)
        }
        var problems: [String] = []
        for (line, name) in MarkdownMentions.names(in: lines) {
            if generatedDirectories.contains(where: name.hasPrefix) { continue }
            let candidates = [file.deletingLastPathComponent().appendingPathComponent(name), root.appendingPathComponent(name)]
            if !candidates.contains(where: { FileManager.default.fileExists(atPath: $0.standardizedFileURL.path) }) {
                problems.append("line \(line): \(name) names no file in the repository")
            }
        }
        return problems
    }

    @Test("every .md file named in plain text (docs, Swift comments, scripts) exists")
    func mentionedFilesExist() async throws {
        // Seconds of file reading: on a thread of its own, not on the cooperative pool
        // (2 threads here), where it held up every other test's continuations.
        let (count, problems) = try await Self.offPool { () throws -> (Int, [String]) in
            var files = Self.markdownFiles()
            for folder in ["Sources", "Tests", "scripts"] {
                guard let walker = FileManager.default.enumerator(at: Self.root.appendingPathComponent(folder), includingPropertiesForKeys: nil,
                                                                  options: [.skipsHiddenFiles]) else { continue }
                for case let url as URL in walker where url.pathExtension == "swift" || folder == "scripts" { files.append(url) }
            }
            files.append(Self.root.appendingPathComponent("Package.swift"))
            var problems: [String] = []
            for file in files {
                let relative = String(file.path.dropFirst(Self.root.path.count + 1))
                problems += try Self.staleMentions(in: file).map { "\(relative) \($0)" }
            }
            return (files.count, problems)
        }
        #expect(count > 100, "the walk found too few files: \(count)")
        for problem in problems { Issue.record("\(problem)") }
    }

    /// Runs `work` on a thread of its own and returns its result.
    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }

    @Test("a plain-text mention of a missing .md file is caught; URLs and generated output are not")
    func mentionCheckCatchesStaleNames() throws {
        try Self.withFiles([
            "here.md": "# Here\n",
            "doc.md": "see here.md and ENVIRONMENT.md (https://example.com/spec.md), bench-results/results.md\n```\nfenced.md\n```\n",
            "code.swift": "/// the guarantees of ARCHITECTURE.md\nlet fixture = \"nowhere.md\"\n",
        ]) { (directory: URL) throws in
            #expect(try Self.staleMentions(in: directory.appendingPathComponent("doc.md"))
                    == ["line 1: ENVIRONMENT.md names no file in the repository"])
            #expect(try Self.staleMentions(in: directory.appendingPathComponent("code.swift"))
                    == ["line 1: ARCHITECTURE.md names no file in the repository"])
        }
    }

    @Test("the check itself catches a missing file and a missing anchor")
    func checkCatchesBreakage() throws {
        try Self.withFiles([
            "target.md": "# Target\n## Part one\n",
            "source.md": "[ok](target.md#part-one) [gone](missing.md) [bad](target.md#part-two) [here](#top)\n# Top\n",
        ]) { (directory: URL) throws in
            #expect(try Self.broken(in: directory.appendingPathComponent("source.md")) == [
                "line 1: missing.md: no such file",
                "line 1: target.md#part-two: no heading makes the anchor #part-two",
            ])
        }
    }

    /// Runs `body` on a fresh temporary directory holding `files` (name → text), then removes it.
    static func withFiles(_ files: [String: String], _ body: (URL) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("doc-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, text) in files { try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        try body(directory)
    }
}

@Suite("Operations guide covers the ops kit")
struct OpsKitDocumentationTests {
    @Test("every alert in deploy/prometheus is described in docs/operations.md")
    func everyAlertDocumented() throws {
        let root = MarkdownLinkResolutionTests.root
        let rules = try String(contentsOf: root.appendingPathComponent("deploy/prometheus/outbox-relay.rules.yml"), encoding: .utf8)
        let operations = try String(contentsOf: root.appendingPathComponent("docs/operations.md"), encoding: .utf8)
        let alerts = rules.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.drop { $0 == " " }
            return trimmed.hasPrefix("- alert: ") ? String(trimmed.dropFirst("- alert: ".count)).trimmingCharacters(in: .whitespaces) : nil
        }
        #expect(alerts.count >= 5, "found too few alerts: \(alerts)")
        for alert in alerts {
            #expect(operations.contains("| `\(alert)` |"), "docs/operations.md's alert table lacks \(alert)")
        }
    }
}
