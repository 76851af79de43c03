import PostgresClient
import Testing

/// `ConnectionTarget.redact` and `description` are what logs, errors and `--print-config`
/// show of a DSN: no password or sslpassword value may survive, in any form libpq accepts.
@Suite("ConnectionTarget: DSN redaction")
struct ConnectionTargetTests {
    /// DSN, its redacted form, and the secret fragments that must not survive.
    static let cases: [(dsn: String, redacted: String, secrets: [String])] = [
        // URL forms
        ("postgres://relay:pw1@db:5432/app?sslmode=verify-full", "postgres://relay:***@db:5432/app?sslmode=verify-full", ["pw1"]),
        ("postgres://db/app?user=a&password=pw2", "postgres://db/app?user=a&password=***", ["pw2"]),
        ("postgres://db/app?sslpassword=keypass1&sslmode=verify-full", "postgres://db/app?sslpassword=***&sslmode=verify-full", ["keypass1"]),
        ("postgresql://relay@db/app?sslkey=/k.pem&sslpassword=keypass2", "postgresql://relay@db/app?sslkey=/k.pem&sslpassword=***", ["keypass2"]),
        ("postgres://relay:pw3@db/app?sslpassword=keypass3", "postgres://relay:***@db/app?sslpassword=***", ["pw3", "keypass3"]),
        // libpq decodes query keys: %70assword is password.
        ("postgres://db/app?%70assword=pw4", "postgres://db/app?%70assword=***", ["pw4"]),
        ("postgres://db/app?PASSWORD=pw5", "postgres://db/app?PASSWORD=***", ["pw5"]),
        // libpq's user info runs to the first '@' before any '/', so '?' and '@' belong to the password.
        ("postgres://relay:pw?6x@db/app", "postgres://relay:***@db/app", ["pw?6x", "6x"]),
        ("postgres://relay:p@w7@db/app", "postgres://relay:***@db/app", ["p@w7", "w7"]),
        ("postgres://relay:pw8@h1:5432,h2:5433/app", "postgres://relay:***@h1:5432,h2:5433/app", ["pw8"]),
        // A parameter without '=' is refused by libpq; it may be the tail of a password with a raw '&'.
        ("postgres://db/app?password=pw9&tail9", "postgres://db/app?password=***&***", ["pw9", "tail9"]),

        // key=value forms
        ("host=db password=pw10 user=a", "host=db password=*** user=a", ["pw10"]),
        ("host=db sslpassword=keypass11 user=a", "host=db sslpassword=*** user=a", ["keypass11"]),
        ("host=db password='a b c12' user=a", "host=db password=*** user=a", ["a b c12", "c12'"]),
        ("host=db password = 'pw13' user=a", "host=db password = *** user=a", ["pw13"]),
        ("host=db password =pw14 user=a", "host=db password =*** user=a", ["pw14"]),
        ("host=db password= pw15 user=a", "host=db password= *** user=a", ["pw15"]),
        (#"host=db password='it\'s pw16' user=a"#, "host=db password=*** user=a", ["pw16", "it"]),
        (#"host=db password=un\ quoted17 user=a"#, "host=db password=*** user=a", ["quoted17", "un"]),
        ("host=db\tpassword='tab18'\nuser=a", "host=db\tpassword=***\nuser=a", ["tab18"]),
        ("sslpassword='x y19' password=pw19 dbname=app", "sslpassword=*** password=*** dbname=app", ["x y19", "y19", "pw19"]),
        ("host=db password=''", "host=db password=***", []),
        // Unterminated quote or a missing '=' (libpq refuses both): redact from there on.
        ("host=db password='pw20 user=a", "host=db password=***", ["pw20", "user=a"]),
        ("host=db oops password=pw21", "host=db ***", ["pw21"]),
        ("host=db password", "host=db ***", []),
    ]

    @Test("redact hides every password and sslpassword value", arguments: cases.indices)
    func redacts(index: Int) {
        let (dsn, redacted, secrets) = Self.cases[index]
        let output = ConnectionTarget.redact(dsn)
        #expect(output == redacted, "\(dsn)")
        for secret in secrets { #expect(!output.contains(secret), "\(secret) survived in \(output)") }
    }

    @Test("strings without secrets pass unchanged", arguments: [
        "postgres://relay@db.example:6543/app?sslmode=verify-full&sslrootcert=/ca.pem",
        "host=db port=5432 dbname=app user=relay sslmode=verify-full application_name='outbox relay'",
        "postgres://db/app?passfile=/home/relay/.pgpass",
    ])
    func unchanged(dsn: String) {
        #expect(ConnectionTarget.redact(dsn) == dsn)
    }

    /// What `description` (logs, errors) shows: host, port, database, user, never a secret.
    static let targets: [(dsn: String, description: String)] = [
        ("postgres://relay:pw@db.example:6543/app", "db.example:6543/app as relay"),
        ("host=h port=7 dbname=d user=u", "h:7/d as u"),
        ("host=h password='x dbname=leak1 user=leak2' dbname=d", "h:5432/d"),
        ("host = h port= 7 dbname ='my db' user=u", "h:7/my db as u"),
        (#"host=h dbname='it\'s' user=u"#, "h:5432/it's as u"),
        ("postgres://relay:p?w=leak3@db:6000/app", "db:6000/app as relay"),
        ("postgres://relay:p@leak4@db/app", "db:5432/app as relay"),
        ("postgres://db/app?sslpassword=leak5&user=u", "db:5432/app as u"),
        ("host=h sslpassword=leak6", "h:5432/postgres"),
    ]

    @Test("description names host, port, database and user, never a password", arguments: targets.indices)
    func describes(index: Int) {
        let (dsn, description) = Self.targets[index]
        let text = ConnectionTarget(parsing: dsn).description
        #expect(text == description, "\(dsn)")
        #expect(!text.contains("leak"), "\(text)")
    }
}
