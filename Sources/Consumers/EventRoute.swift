import Schema

/// The effect a message asks for.
enum EventKind: Equatable {
    case booking
    case payment

    /// The canonical type, for metrics and logs.
    var type: String { self == .booking ? EventType.bookSave : EventType.paymentSave }

    init?(topic: String) {
        switch topic {
        case EventType.bookSave: self = .booking
        case EventType.paymentSave: self = .payment
        default: return nil
        }
    }

    init?(type: String) {
        if EventType.bookTypes.contains(type) { self = .booking }
        else if EventType.paymentTypes.contains(type) { self = .payment }
        else { return nil }
    }
}

/// Which effect a message gets. Pure.
///
/// The topic decides, as the original service's `@KafkaListener(topics = "BOOK_SAVE")` did,
/// and the type must be one this topic's effect accepts (BOOK_SAVE or the original BOOK on
/// BOOK_SAVE; PAYMENT_SAVE or PAYMENT on PAYMENT_SAVE) or absent. Any other type on our
/// topics is refused rather than applied as the topic's effect: a new event type (say a
/// cancellation) written to BOOK_SAVE must not create a booking. A topic the relay renamed
/// (`topic-routes`) is not one of ours; then the type alone decides.
enum EventRoute {
    struct Refused: Error, Equatable {
        var reason: String
        var detail: String
    }

    static let accepted = "accepted: topics BOOK_SAVE (types BOOK_SAVE, BOOK) and PAYMENT_SAVE (types PAYMENT_SAVE, PAYMENT), "
        + "or any topic with one of those types"

    static func decide(topic: String, type: String?) -> Result<EventKind, Refused> {
        let byType = type.flatMap(EventKind.init(type:))
        if let byTopic = EventKind(topic: topic) {
            guard let type else { return .success(byTopic) }
            if byType == byTopic { return .success(byTopic) }
            if let byType {
                return .failure(Refused(reason: "type_mismatch", detail: "topic \(topic) carries \(byTopic.type) effects but the event type \(printable(type)) is a \(byType.type) type; \(accepted)"))
            }
        } else if let byType {
            return .success(byType)
        }
        return .failure(Refused(reason: "unknown_type", detail: "no handler for topic \(printable(topic)) with event type \(type.map(printable) ?? "(no type header)"); \(accepted)"))
    }

    private static func printable(_ text: String) -> String { String(reflecting: String(text.prefix(100))) }
}
