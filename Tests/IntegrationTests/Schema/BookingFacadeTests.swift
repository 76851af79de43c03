import PostgresClient
import Schema
import Testing

@Suite("Booking and payment facade")
struct BookingFacadeTests {
    @Test("50 concurrent attempts on one seat: exactly one booking and one outbox row")
    func contention() async throws {
        try await withTestContext(broker: false) { ctx in
            let admin = try await ctx.migrated()
            let seed = try await DomainSeed.create(on: admin, seats: 1, users: 50)
            let seat = seed.seatIds[0]
            let outcomes = try await withThrowingTaskGroup(of: Result<Int64, BookingError>.self) { group in
                for user in seed.users {
                    group.addTask {
                        let conn = try await ctx.connect()
                        do { return .success(try await BookingFacade().reserveSeat(on: conn, seatId: seat, userId: user.userId, token: user.token).bookingId) }
                        catch let error as BookingError { return .failure(error) }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let wins = outcomes.filter { if case .success = $0 { true } else { false } }
            #expect(wins.count == 1)
            #expect(outcomes.allSatisfy { if case .failure(let e) = $0 { e == .seatTaken(seatId: seat) } else { true } })
            #expect(try await admin.query("SELECT count(*) AS n FROM booking").single().int("n") == 1)
            let outbox = try await admin.query("SELECT topic, mq_key, status FROM outbox")
            #expect(outbox.rows.count == 1)
            #expect(try outbox.single().string("mq_key") == "BOOK:\(seat)")
            #expect(try outbox.single().string("topic") == "BOOK_SAVE")
            #expect(try await admin.query("SELECT status FROM seat WHERE seat_id = $1", [.int(seat)]).single().string("status") == "HELD")
        }
    }

    @Test("payment debits, marks PAID and SOLD, and enqueues PAYMENT_SAVE in one transaction")
    func pay() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.migrated()
            let seed = try await DomainSeed.create(on: conn, seats: 1, users: 1, balance: 80_000, price: 50_000)
            let user = seed.users[0]
            let reservation = try await BookingFacade().reserveSeat(on: conn, seatId: seed.seatIds[0], userId: user.userId, token: user.token)
            let receipt = try await BookingFacade().pay(on: conn, bookingId: reservation.bookingId, userId: user.userId, token: user.token)
            #expect(receipt.event.payment.amount == 50_000)
            #expect(receipt.event.messageQueueKey == "PAYMENT:\(reservation.bookingId)")
            #expect(try await conn.query("SELECT point_balance FROM app_user").single().int64("point_balance") == 30_000)
            #expect(try await conn.query("SELECT status FROM booking").single().string("status") == "PAID")
            #expect(try await conn.query("SELECT status FROM seat").single().string("status") == "SOLD")
            #expect(try await conn.query("SELECT count(*) AS n FROM outbox WHERE topic = 'PAYMENT_SAVE'").single().int("n") == 1)
            let paidTwice = await #expect(throws: BookingError.self) {
                try await BookingFacade().pay(on: conn, bookingId: reservation.bookingId, userId: user.userId, token: user.token)
            }
            #expect(paidTwice == .bookingNotPayable(bookingId: reservation.bookingId, status: "PAID"))
        }
    }

    @Test("a failed payment leaves no outbox row and no partial write")
    func insufficientBalance() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.migrated()
            let seed = try await DomainSeed.create(on: conn, seats: 1, users: 1, balance: 10_000, price: 50_000)
            let user = seed.users[0]
            let reservation = try await BookingFacade().reserveSeat(on: conn, seatId: seed.seatIds[0], userId: user.userId, token: user.token)
            let error = await #expect(throws: BookingError.self) {
                try await BookingFacade().pay(on: conn, bookingId: reservation.bookingId, userId: user.userId, token: user.token)
            }
            #expect(error == .insufficientBalance(userId: user.userId, balance: 10_000, price: 50_000))
            #expect(try await conn.query("SELECT count(*) AS n FROM outbox WHERE topic = 'PAYMENT_SAVE'").single().int("n") == 0)
            #expect(try await conn.query("SELECT count(*) AS n FROM payment").single().int("n") == 0)
            #expect(try await conn.query("SELECT point_balance FROM app_user").single().int64("point_balance") == 10_000)
            #expect(try await conn.query("SELECT status FROM booking").single().string("status") == "RESERVED")
        }
    }

    @Test("an expired token, an unknown seat and a foreign token are typed errors with no writes")
    func refusals() async throws {
        try await withTestContext(broker: false) { ctx in
            let conn = try await ctx.migrated()
            let seed = try await DomainSeed.create(on: conn, seats: 1, users: 2)
            let user = seed.users[0]
            let facade = BookingFacade()
            let unknown = await #expect(throws: BookingError.self) {
                try await facade.reserveSeat(on: conn, seatId: 999_999, userId: user.userId, token: user.token)
            }
            #expect(unknown == .unknownSeat(seatId: 999_999))
            let foreign = await #expect(throws: BookingError.self) {
                try await facade.reserveSeat(on: conn, seatId: seed.seatIds[0], userId: user.userId, token: seed.users[1].token)
            }
            #expect(foreign == .tokenInvalid(token: seed.users[1].token))
            try await conn.query("UPDATE wait_token SET expires_at = now() - interval '1 second' WHERE user_id = $1", [.int(user.userId)])
            let expired = await #expect(throws: BookingError.self) {
                try await facade.reserveSeat(on: conn, seatId: seed.seatIds[0], userId: user.userId, token: user.token)
            }
            #expect(expired == .tokenExpired(token: user.token))
            #expect(try await conn.query("SELECT count(*) AS n FROM booking").single().int("n") == 0)
            #expect(try await conn.query("SELECT count(*) AS n FROM outbox").single().int("n") == 0)
            #expect(try await conn.query("SELECT status FROM seat").single().string("status") == "AVAILABLE")
        }
    }
}
