import Foundation
public import PostgresClient

/// Seeds a concert with seats and users holding active wait tokens, for the demo, the
/// benchmarks and the tests.
public struct DomainSeed: Sendable {
    public struct User: Sendable, Equatable {
        public var userId: Int64
        public var token: String
    }

    public var scheduleId: Int64
    public var seatIds: [Int64]
    public var users: [User]

    public static func create(on connection: PGConnection, seats: Int, users: Int, balance: Int64 = 1_000_000,
                              price: Int64 = 50_000, tokenLifetime: Duration = .seconds(3_600)) async throws -> DomainSeed {
        try await connection.transaction { conn in
            let concert = try await conn.query("INSERT INTO concert (title) VALUES ('outbox-relay live') RETURNING concert_id").single().int64("concert_id")
            let schedule = try await conn.query(
                "INSERT INTO concert_schedule (concert_id, starts_at) VALUES ($1, now() + interval '30 days') RETURNING schedule_id",
                [.int(concert)]).single().int64("schedule_id")
            let seatIds = try await conn.query(
                "INSERT INTO seat (schedule_id, seat_no, price) SELECT $1, n, $2 FROM generate_series(1, $3) n RETURNING seat_id",
                [.int(schedule), .int(price), .int(seats)]).rows.map { try $0.int64("seat_id") }
            let userRows = try await conn.query(
                "INSERT INTO app_user (name, point_balance) SELECT 'user-' || n, $1 FROM generate_series(1, $2) n RETURNING user_id",
                [.int(balance), .int(users)]).rows.map { try $0.int64("user_id") }
            let seconds = Int(tokenLifetime.components.seconds)
            var seeded: [User] = []
            for userId in userRows {
                let token = UUID().uuidString.lowercased()
                try await conn.query(
                    "INSERT INTO wait_token (user_id, token, status, expires_at) VALUES ($1, $2::uuid, 'ACTIVE', now() + make_interval(secs => $3))",
                    [.int(userId), .text(token), .int(seconds)])
                seeded.append(User(userId: userId, token: token))
            }
            return DomainSeed(scheduleId: schedule, seatIds: seatIds, users: seeded)
        }
    }
}
