import Foundation

/// The relative links of a Markdown document and the anchors its headings define, as
/// GitHub renders them. Pure text work, so the link check runs without servers or network.
///
/// Covered: inline links and images `[text](target "title")`, and reference definitions
/// `[label]: target`. Skipped: fenced code blocks, inline code spans, and targets with a
/// scheme (`https:`, `mailto:`), which name nothing in the repository.
struct MarkdownLink: Equatable, CustomStringConvertible {
    /// The path part, "" for a link to an anchor of the same document.
    var path: String
    /// The fragment after `#`, nil when there is none.
    var anchor: String?
    var line: Int

    var description: String { "line \(line): \(path)\(anchor.map { "#\($0)" } ?? "")" }
}

enum MarkdownLinks {
    /// Every relative link in `text`, in order.
    static func relativeLinks(in text: String) -> [MarkdownLink] {
        var links: [MarkdownLink] = []
        for (number, line) in proseLines(of: text) {
            for target in targets(in: withoutCodeSpans(line)) {
                guard let link = relative(target, line: number) else { continue }
                links.append(link)
            }
        }
        return links
    }

    /// The anchors the document's headings define: GitHub's slugs, with `-1`, `-2`, … for
    /// repeated headings.
    static func anchors(in text: String) -> Set<String> {
        var seen: [String: Int] = [:]
        var anchors: Set<String> = []
        for (_, line) in proseLines(of: text) {
            let trimmed = line.drop { $0 == " " }
            guard trimmed.hasPrefix("#") else { continue }
            let hashes = trimmed.prefix { $0 == "#" }
            guard hashes.count <= 6, trimmed.dropFirst(hashes.count).first == " " else { continue }
            let slug = slug(String(trimmed.dropFirst(hashes.count)))
            let count = seen[slug, default: 0]
            anchors.insert(count == 0 ? slug : "\(slug)-\(count)")
            seen[slug] = count + 1
        }
        return anchors
    }

    /// GitHub's heading slug: lower case, inline markup and punctuation dropped (letters,
    /// digits, `-` and `_` stay), each space a `-`.
    static func slug(_ heading: String) -> String {
        let text = heading.trimmingCharacters(in: .whitespaces)
        var out = ""
        for character in text.lowercased() {
            if character == " " {
                out.append("-")
            } else if character.isLetter || character.isNumber || character == "-" || character == "_" {
                out.append(character)
            }
        }
        return out
    }

    /// Lines outside fenced code blocks, numbered from 1.
    static func proseLines(of text: String) -> [(Int, String)] {
        var out: [(Int, String)] = []
        var fence: String?
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            let trimmed = line.drop { $0 == " " }
            let marker = trimmed.hasPrefix("```") ? "```" : trimmed.hasPrefix("~~~") ? "~~~" : nil
            if let marker {
                if fence == nil { fence = marker } else if fence == marker { fence = nil }
                continue
            }
            if fence == nil { out.append((index + 1, line)) }
        }
        return out
    }

    /// `line` with every inline code span (`` `…` ``, any run of backticks) removed.
    static func withoutCodeSpans(_ line: String) -> String {
        var out = ""
        var rest = Substring(line)
        while let open = rest.firstIndex(of: "`") {
            out += rest[..<open]
            let ticks = rest[open...].prefix { $0 == "`" }
            let after = rest[ticks.endIndex...]
            guard let close = after.range(of: String(ticks)) else { return out + rest[open...] }
            rest = after[close.upperBound...]
        }
        return out + rest
    }

    /// Link targets: `](target)` or `](target "title")`, and `[label]: target` definitions.
    static func targets(in line: String) -> [String] {
        var out: [String] = []
        let trimmed = line.drop { $0 == " " }
        if trimmed.hasPrefix("["), let close = trimmed.range(of: "]: ") {
            let target = trimmed[close.upperBound...].split(separator: " ").first.map(String.init) ?? ""
            if !target.isEmpty { out.append(target) }
        }
        var rest = Substring(line)
        while let open = rest.range(of: "](") {
            let after = rest[open.upperBound...]
            guard let end = after.firstIndex(of: ")") else { break }
            let inside = after[..<end].trimmingCharacters(in: .whitespaces)
            let target = inside.hasPrefix("<") ? String(inside.dropFirst().prefix { $0 != ">" })
                : String(inside.prefix { $0 != " " })
            out.append(target)
            rest = after[after.index(after: end)...]
        }
        return out
    }

    static func relative(_ target: String, line: Int) -> MarkdownLink? {
        guard !target.isEmpty, !hasScheme(target), !target.hasPrefix("//") else { return nil }
        let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts[0])
        let anchor = parts.count > 1 ? String(parts[1]) : nil
        return MarkdownLink(path: path.removingPercentEncoding ?? path, anchor: anchor, line: line)
    }

    static func hasScheme(_ target: String) -> Bool {
        guard let colon = target.firstIndex(of: ":") else { return false }
        let scheme = target[..<colon]
        return !scheme.isEmpty && scheme.allSatisfy { $0.isLetter || $0.isNumber || "+-.".contains($0) }
            && !scheme.contains("/")
    }
}

/// Names of Markdown files written as plain text (in prose, or in a code comment) rather than
/// as links: a stale one misleads as much as a broken link.
enum MarkdownMentions {
    /// A file name or path ending in `.md`, with at least one name character before it.
    static var pattern: Regex<Substring> { #/[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b/# }

    /// The `.md` names in `lines`, numbered as given. Links are the link check's business,
    /// so `[text](target)` is left out, and a name that is part of a URL is not a file here.
    static func names(in lines: [(Int, String)]) -> [(line: Int, name: String)] {
        var out: [(Int, String)] = []
        for (number, raw) in lines {
            let line = raw.replacing(#/!?\[[^\]]*\]\([^)]*\)/#, with: "")
            for match in line.matches(of: pattern) {
                let name = String(match.output)
                let before = line[..<match.range.lowerBound].last
                if before == ":" || name.hasPrefix("//") { continue }
                out.append((number, name))
            }
        }
        return out
    }

    /// The lines of a source or script file that are comments (`//`, `///`, `#`).
    static func commentLines(of text: String, hashComments: Bool) -> [(Int, String)] {
        text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { index, raw in
            let trimmed = raw.drop { $0 == " " }
            let isComment = trimmed.hasPrefix("//") || (hashComments && trimmed.hasPrefix("#"))
            return isComment ? (index + 1, String(raw)) : nil
        }
    }
}
