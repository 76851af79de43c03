#if canImport(Glibc)
import Glibc
#endif

/// Starts `argv[0]` with posix_spawn, stdin from /dev/null and stdout+stderr appended to
/// `outputPath`. Returns the pid.
///
/// Foundation's Process is not used because it detects exit through a descriptor that
/// daemons (the postmaster forked by pg_ctl) inherit, so it would wait forever.
func spawnProcess(_ argv: [String], outputPath: String, environment: [String: String]? = nil) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // Own process group, so a terminal's Ctrl-C reaches only us and we tear children down.
    // Dispatch worker threads block most signals and a spawned child inherits that mask,
    // so reset it: otherwise a broker would ignore SIGTERM. Default dispositions likewise.
    var emptySet = sigset_t()
    sigemptyset(&emptySet)
    var defaultSet = sigset_t()
    sigfillset(&defaultSet)
    sigdelset(&defaultSet, SIGKILL)
    sigdelset(&defaultSet, SIGSTOP)
    posix_spawnattr_setsigmask(&attributes, &emptySet)
    posix_spawnattr_setsigdefault(&attributes, &defaultSet)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    posix_spawnattr_setpgroup(&attributes, 0)

    let env = (environment ?? currentEnvironment()).map { "\($0.key)=\($0.value)" }
    var pid: pid_t = 0
    let argvC = argv.map { strdup($0) } + [nil]
    let envC = env.map { strdup($0) } + [nil]
    defer { argvC.forEach { free($0) }; envC.forEach { free($0) } }
    let rc = posix_spawn(&pid, argv[0], &actions, &attributes, argvC, envC)
    guard rc == 0 else {
        throw CommandFailed(command: argv.joined(separator: " "), status: rc,
                            output: "posix_spawn failed: \(String(cString: strerror(rc)))")
    }
    return pid
}

/// Blocks until `pid` exits and returns its exit status (128+signal when killed).
func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        if errno != EINTR { return -1 }
    }
    if status & 0x7f == 0 { return (status >> 8) & 0xff }
    return 128 + (status & 0x7f)
}

private func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") {
            result[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        pointer += 1
    }
    return result
}
