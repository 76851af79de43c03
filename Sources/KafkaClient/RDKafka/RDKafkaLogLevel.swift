import Logging

/// The level a librdkafka log line is logged at, from its syslog level.
///
/// librdkafka's own `LOG_ERR` lines report a broker connection that failed or timed out
/// ("FAIL", "REQTMOUT"), which it reconnects and retries by itself: a broker frozen for
/// 20 s printed three of them from the consumers, and an operator paging on errors would
/// have been woken for a failure that healed. They are warnings here. The faults an operator
/// must act on are logged at error once, by the callbacks that recognise them: a refused
/// login or certificate, a fatal producer error, a publishing pause with its fix.
enum RDKafkaLogLevel {
    static func level(syslog: Int32) -> Logger.Level {
        switch syslog {
        case ...2: .error  // LOG_EMERG, LOG_ALERT, LOG_CRIT
        case 3, 4: .warning  // LOG_ERR, LOG_WARNING
        case 5, 6: .info  // LOG_NOTICE, LOG_INFO
        default: .debug
        }
    }
}
