import Schema
import Testing

@Suite("RFC 3339 from PostgreSQL's timestamptz text")
struct RFC3339TimestampTests {
    @Test("ISO output is rewritten, instant and offset unchanged", arguments: [
        ("2026-11-26 18:57:50.123456+00", "2026-11-26T18:57:50.123456+00:00"),
        ("2026-11-26 18:57:50+00", "2026-11-26T18:57:50+00:00"),
        ("2026-11-26 18:57:50.1+05:30", "2026-11-26T18:57:50.1+05:30"),
        ("1999-12-31 23:59:59.999-03:30", "1999-12-31T23:59:59.999-03:30"),
        ("2016-12-31 23:59:60+00", "2016-12-31T23:59:60+00:00"),
        ("2026-01-02T03:04:05+01", "2026-01-02T03:04:05+01:00"),
    ])
    func converts(input: String, expected: String) {
        #expect(RFC3339Timestamp.convert(input) == expected)
    }

    @Test("values with no RFC 3339 form give nil", arguments: [
        "infinity", "-infinity", "", "0044-03-15 12:00:00+00 BC", "12026-01-01 00:00:00+00",
        "1850-01-01 00:00:00+00:53:28",  // a local mean time offset, with seconds
        "Thu Nov 26 18:57:50.123 2026 UTC",  // DateStyle Postgres
        "11/26/2026 18:57:50.123 UTC",  // DateStyle SQL
        "2026-13-01 00:00:00+00", "2026-11-26 24:00:00+00", "2026-11-26 18:57:50.+00",
        "2026-11-26 18:57:50.1234567890+00", "2026-11-26 18:57:50+0", "2026-11-26 18:57:50+00:0",
    ])
    func refuses(input: String) {
        #expect(RFC3339Timestamp.convert(input) == nil)
    }

    @Test("the longest accepted input fits the output bound")
    func longest() {
        let longest = "2026-11-26 18:57:50.123456789-12:45"
        #expect(RFC3339Timestamp.convert(longest)?.utf8.count == RFC3339Timestamp.maxLength)
    }
}
