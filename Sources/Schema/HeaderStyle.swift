/// Which header vocabulary the relay and the sweeper put on records (`--header-style`).
/// Key and value are the same in every style: key = `mq_key` (the aggregate id, as
/// Debezium's router and the CloudEvents binding's partition key expect), value = the
/// payload as stored. Only the headers differ (`RecordHeaders`).
public enum HeaderStyle: String, Sendable, CaseIterable {
    /// `outbox-id`, `outbox-type`, `outbox-created-at`: the default.
    case outbox
    /// `id`, `eventType`: drop-in for consumers of Debezium's outbox event router.
    case debezium
    /// `ce_specversion`, `ce_id`, `ce_type`, `ce_source`, `ce_time`, `content-type`.
    case cloudevents

    /// The one place the default is written.
    public static let `default` = HeaderStyle.outbox
}
