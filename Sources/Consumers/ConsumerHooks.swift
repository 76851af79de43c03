/// Points in the pipeline where a test can watch or simulate a crash. Internal: tests reach
/// them with `@testable import Consumers` (`ConsumerService.init(..., hooks:)`), so they are
/// no part of the public API and cannot be changed while a consumer runs.
struct ConsumerHooks: Sendable {
    /// On the database thread, after the database commit and before the offset commit.
    /// Throwing `SimulatedCrash` from it simulates a crash at the worst moment: the offsets
    /// are never committed.
    var afterDatabaseCommit: (@Sendable () throws -> Void)?
    /// On the database thread, as it starts applying a batch.
    var beforeDatabaseApply: (@Sendable () -> Void)?
    /// On the Kafka thread, when a batch of this many messages is parsed.
    var afterPrepare: (@Sendable (Int) -> Void)?

    init(afterDatabaseCommit: (@Sendable () throws -> Void)? = nil, beforeDatabaseApply: (@Sendable () -> Void)? = nil,
         afterPrepare: (@Sendable (Int) -> Void)? = nil) {
        self.afterDatabaseCommit = afterDatabaseCommit
        self.beforeDatabaseApply = beforeDatabaseApply
        self.afterPrepare = afterPrepare
    }
}

/// Thrown by `afterDatabaseCommit` hooks in tests to simulate a crash.
struct SimulatedCrash: Error {}
