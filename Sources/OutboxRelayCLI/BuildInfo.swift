/// What `--version` prints and `outbox_relay_build_info{version}` exports, so a dashboard
/// can tell which build each instance runs during a rolling upgrade.
enum BuildInfo {
    static let version = "0.1.0"
}
