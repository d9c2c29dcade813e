//! The `kuryr` command line as an operator meets it: start-up errors that fit on one line and
//! say what to fix, `kuryr version`, `--help`. Most need neither root nor the lab and run in a
//! plain `cargo test`; the one that starts a serving daemon is ignored there and run by
//! `make test`.
mod common;

use kuryr_testlab::{Server, NB_SCHEMA, VSWITCH_SCHEMA};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KURYR: &str = env!("CARGO_BIN_EXE_kuryr");

/// Runs `kuryr args...` with the environment a service manager would give it, killing it and
/// failing the test if it is still running after `limit`. Returns its output and run time.
fn kuryr(args: &[&str], limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = Command::new(KURYR)
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kuryr");
    loop {
        if child.try_wait().expect("wait for kuryr").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect kuryr's output");
            panic!(
                "kuryr {} still running after {limit:?}; stderr:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    (
        child.wait_with_output().expect("collect kuryr's output"),
        took,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one line a failed start must print on stderr, or a failure showing all of them.
fn one_line(stderr: &[u8]) -> String {
    let s = text(stderr);
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "a start-up error must be one line on stderr, got:\n{s}"
    );
    lines[0].to_string()
}

/// The tail after the last `": "` that appears earlier in the line too: an error that prints
/// its cause twice.
fn repeated_cause(line: &str) -> Option<String> {
    let parts: Vec<&str> = line.split(": ").collect();
    (1..parts.len()).find_map(|n| {
        let tail = parts[parts.len() - n..].join(": ");
        let head = parts[..parts.len() - n].join(": ");
        (tail.len() >= 12 && head.contains(&tail)).then_some(tail)
    })
}

#[test]
fn a_bad_config_value_stops_the_daemon_with_one_line_naming_file_section_key_and_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    std::fs::write(&conf, "[DEFAULT]\ncapability_scope = planet\n").expect("write config");
    let socket = dir.path().join("kuryr.sock");
    let (out, _) = kuryr(
        &[
            "daemon",
            "--config",
            &conf.display().to_string(),
            "--socket",
            &socket.display().to_string(),
        ],
        Duration::from_secs(10),
    );
    assert!(!out.status.success(), "kuryr started with a bad config");
    let line = one_line(&out.stderr);
    assert_eq!(
        line,
        format!(
            "kuryr: {}: [DEFAULT] capability_scope = \"planet\": expected local or global",
            conf.display()
        )
    );
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert!(!socket.exists(), "a daemon that failed left its socket");
}

#[test]
fn an_unreachable_northbound_stops_the_daemon_within_10_s_with_one_line_naming_the_remote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    std::fs::write(&conf, "").expect("write config");
    let remote = format!("unix:{}", dir.path().join("no-nb.sock").display());
    let socket = dir.path().join("kuryr.sock");
    let (out, took) = kuryr(
        &[
            "daemon",
            "--config",
            &conf.display().to_string(),
            "--nb",
            &remote,
            "--socket",
            &socket.display().to_string(),
        ],
        Duration::from_secs(15),
    );
    assert!(!out.status.success(), "kuryr started without Northbound");
    assert!(took < Duration::from_secs(10), "gave up after {took:?}");
    let line = one_line(&out.stderr);
    assert!(
        line.starts_with(&format!("kuryr: cannot reach OVN Northbound at {remote}: ")),
        "{line}"
    );
    assert!(line.contains("No such file or directory"), "{line}");
    assert!(!socket.exists(), "a daemon that failed left its socket");
}

#[test]
fn start_up_errors_state_their_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.conf");
    let empty = dir.path().join("empty.conf");
    std::fs::write(&empty, "").expect("write config");
    let remote = format!("unix:{}", dir.path().join("no-nb.sock").display());
    let socket = dir.path().join("kuryr.sock");
    let socket = socket.display().to_string();
    let mut repeated = Vec::new();
    for args in [
        vec![
            "daemon".to_string(),
            "--config".into(),
            missing.display().to_string(),
        ],
        vec![
            "daemon".to_string(),
            "--config".into(),
            empty.display().to_string(),
            "--nb".into(),
            remote.clone(),
            "--socket".into(),
            socket.clone(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (out, _) = kuryr(&args, Duration::from_secs(15));
        assert!(!out.status.success());
        let line = one_line(&out.stderr);
        if let Some(tail) = repeated_cause(&line) {
            repeated.push(format!("says {tail:?} twice: {line}"));
        }
    }
    assert!(repeated.is_empty(), "{}", repeated.join("\n"));
}

#[test]
fn version_prints_the_version_and_the_commit_as_text_and_as_json() {
    let (out, _) = kuryr(&["version"], Duration::from_secs(10));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let prefix = format!("kuryr {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = line
        .trim_end()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("expected `{prefix}<commit>)`, got {line:?}"));
    assert!(
        !commit.is_empty() && !commit.contains(char::is_whitespace),
        "{line:?}"
    );

    let (out, _) = kuryr(&["version", "--format", "json"], Duration::from_secs(10));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");
    assert_eq!(v["commit"], commit, "the same commit as the text form: {v}");
    let target = v["target"].as_str().unwrap_or_default();
    assert!(
        target.contains("linux") && target.split('-').count() >= 3,
        "a target triple: {v}"
    );
    assert!(
        v["rustc"]
            .as_str()
            .is_some_and(|r| r.starts_with("rustc 1.")),
        "{v}"
    );
    let date = v["build_date"].as_str().unwrap_or_default();
    let parts: Vec<&str> = date.split('-').collect();
    assert!(
        parts.len() == 3
            && parts[0].len() == 4
            && parts[0] >= "2024"
            && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())),
        "a build date: {v}"
    );

    let (out, _) = kuryr(&["--version"], Duration::from_secs(10));
    assert!(out.status.success());
    assert!(text(&out.stdout).contains(commit), "{}", text(&out.stdout));
}

#[test]
fn help_of_kuryr_and_of_kuryr_daemon_lists_commands_and_flags() {
    let (out, _) = kuryr(&["--help"], Duration::from_secs(10));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for word in ["daemon", "version"] {
        assert!(help.contains(word), "kuryr --help lacks {word}:\n{help}");
    }
    let (out, _) = kuryr(&["daemon", "--help"], Duration::from_secs(10));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for flag in [
        "--config",
        "--nb",
        "--ovsdb",
        "--bridge",
        "--socket",
        "--host",
        "--log-level",
    ] {
        assert!(
            help.contains(flag),
            "kuryr daemon --help lacks {flag}:\n{help}"
        );
    }
}

// ---- a daemon that starts ---------------------------------------------------------------------

/// Sends SIGTERM, as `systemctl stop` or `docker plugin disable` would.
fn terminate(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -TERM {}", child.id());
}

/// Kills the daemon if the test fails before it stopped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_socket(path: &Path, child: &mut Child, limit: Duration) {
    let start = Instant::now();
    while !(path.exists()
        && common::post(path, "/Plugin.Activate", "").is_ok_and(|(s, _)| s == 200))
    {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("kuryr daemon exited with {status} before serving");
        }
        assert!(
            start.elapsed() < limit,
            "no answer on {} within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_daemon_configured_by_file_serves_as_configured_and_stops_cleanly_on_sigterm() {
    common::require_lab();
    let dir = tempfile::tempdir().expect("tempdir");
    // Private databases: this daemon must not reconcile the lab's br-int or touch its Northbound.
    let nb = Server::standalone(dir.path(), "nb", NB_SCHEMA);
    let ovs = Server::standalone(dir.path(), "conf", VSWITCH_SCHEMA);
    let init = common::run(Command::new("ovs-vsctl").args([
        &format!("--db={}", ovs.unix_remote()),
        "--timeout=10",
        "--no-wait",
        "--",
        "init",
        "--",
        "add-br",
        "br-cli",
    ]));
    assert!(init.status.success(), "{}", text(&init.stderr));
    let socket = dir.path().join("plugins").join("kuryr-cli.sock");
    let conf = dir.path().join("kuryr.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\ncapability_scope = global\nplugin_socket = {}\nhost = cli-test-host\n\
             [binding]\nnetwork_mtu = 1400\n\
             [ovn]\novn_nb_connection = {}\n\
             [ovs]\novsdb_connection = {}\nintegration_bridge = br-cli\n",
            socket.display(),
            nb.unix_remote(),
            ovs.unix_remote()
        ),
    )
    .expect("write config");

    let child = Command::new(KURYR)
        .args(["daemon", "--config", &conf.display().to_string()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kuryr daemon");
    let mut d = Running(child);
    wait_for_socket(&socket, &mut d.0, Duration::from_secs(20));

    let (status, body) =
        common::post(&socket, "/NetworkDriver.GetCapabilities", "").expect("GetCapabilities");
    assert_eq!(status, 200, "{body}");
    let caps: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        caps["Scope"], "global",
        "capability_scope from the file: {caps}"
    );

    terminate(&d.0);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = d.0.try_wait().expect("wait for kuryr") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "kuryr did not stop within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = d.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "exit {status} after SIGTERM:\n{stderr}");
    assert!(!socket.exists(), "the socket outlived the daemon");
    assert!(
        !stderr.contains(" WARN ") && !stderr.contains(" ERROR "),
        "a clean start and stop logs no warning:\n{stderr}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn serving_while_connecting_answers_at_once_refuses_calls_clearly_then_serves_once_northbound_is_up(
) {
    common::require_lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let ovs = Server::standalone(dir.path(), "conf", VSWITCH_SCHEMA);
    let init = common::run(Command::new("ovs-vsctl").args([
        &format!("--db={}", ovs.unix_remote()),
        "--timeout=10",
        "--no-wait",
        "--",
        "init",
        "--",
        "add-br",
        "br-late",
    ]));
    assert!(init.status.success(), "{}", text(&init.stderr));
    // Northbound is not there yet: the daemon must bind its socket anyway.
    let nb_remote = format!("unix:{}", dir.path().join("nb.sock").display());
    let socket = dir.path().join("plugins").join("kuryr-late.sock");
    let conf = dir.path().join("kuryr.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nplugin_socket = {}\nhost = late-host\n\
             [binding]\nnetwork_mtu = 1400\n\
             [ovn]\novn_nb_connection = {nb_remote}\n\
             [ovs]\novsdb_connection = {}\nintegration_bridge = br-late\n",
            socket.display(),
            ovs.unix_remote()
        ),
    )
    .expect("write config");
    let started = Instant::now();
    let child = Command::new(KURYR)
        .args(["daemon", "--config", &conf.display().to_string()])
        // As `docker plugin set` passes it: an oslo.config environment variable.
        .env("OS_DEFAULT__SERVE_WHILE_CONNECTING", "true")
        .env("OS_DEFAULT__CONNECTIVITY_SCOPE", "global")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kuryr daemon");
    let mut d = Running(child);
    wait_for_socket(&socket, &mut d.0, Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the socket answered only after {:?}",
        started.elapsed()
    );
    let (status, body) =
        common::post(&socket, "/NetworkDriver.GetCapabilities", "").expect("GetCapabilities");
    assert_eq!(status, 200, "{body}");
    let caps: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(caps["Scope"], "local", "{caps}");
    assert_eq!(caps["ConnectivityScope"], "global", "{caps}");
    let pool = r#"{"AddressSpace":"","Pool":"10.184.0.0/24","SubPool":"","Options":{},"V6":false}"#;
    let (status, body) =
        common::post(&socket, "/IpamDriver.RequestPool", pool).expect("RequestPool");
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("RequestPool: kuryr is still starting"),
        "{body}"
    );
    assert!(
        body.contains(&format!("OVN Northbound at {nb_remote}")),
        "the refusal does not say what kuryr waits for: {body}"
    );
    // Northbound comes up: the same call is served within the retry interval.
    let _nb = Server::standalone(dir.path(), "nb", NB_SCHEMA);
    let up = Instant::now();
    loop {
        let (status, body) =
            common::post(&socket, "/IpamDriver.RequestPool", pool).expect("RequestPool");
        if status == 200 {
            assert!(body.contains("10.184.0.0/24"), "{body}");
            break;
        }
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "not serving 20 s after Northbound came up: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&d.0);
    let start = Instant::now();
    while d.0.try_wait().expect("wait for kuryr").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "kuryr did not stop within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!socket.exists(), "the socket outlived the daemon");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn log_file_gets_json_lines_and_is_reopened_on_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = format!(
        "[DEFAULT]\nlog_dir = {}\nlog_file = kuryr.log\nuse_json = true\n",
        dir.path().display()
    );
    let d = common::Daemon::start_with_conf(&conf, &[]);
    let log = dir.path().join("kuryr.log");
    let lines = |p: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    };
    common::wait_until(
        "the daemon's start in its log file",
        Duration::from_secs(10),
        || {
            lines(&log).iter().any(|v| {
                v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("serving"))
            })
        },
    );
    assert!(
        !d.log_text().contains("serving"),
        "the log went to stderr too: {}",
        d.log_text()
    );
    // What logrotate does: move the file, then SIGHUP.
    let rotated = dir.path().join("kuryr.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let pid = d.pid().expect("running").to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    common::wait_until(
        "a fresh log file after SIGHUP",
        Duration::from_secs(10),
        || {
            lines(&log)
                .iter()
                .any(|v| v["fields"]["message"] == "log file reopened")
        },
    );
    // A call after the rotation lands in the new file, not the moved one.
    let before = lines(&rotated).len();
    let (status, _) = d.call("/NetworkDriver.GetCapabilities", "");
    assert_eq!(status, 200);
    common::wait_until(
        "the call's line in the new file",
        Duration::from_secs(10),
        || {
            lines(&log).iter().any(|v| {
                v["fields"]["method"]
                    .as_str()
                    .is_some_and(|m| m.contains("GetCapabilities"))
            })
        },
    );
    assert_eq!(lines(&rotated).len(), before, "the moved file still grows");
}

/// A unix listener handed to a child as descriptor 3, the way systemd passes sockets.
fn spawn_socket_activated(
    listener: &std::os::unix::net::UnixListener,
    notify: &std::path::Path,
    conf: &std::path::Path,
    log: &std::path::Path,
) -> std::process::Child {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    let mut cmd = std::process::Command::new("sh");
    // `$$` is the shell's pid, which `exec` gives to kuryr: LISTEN_PID names it.
    cmd.arg("-c")
        .arg(format!(
            "LISTEN_PID=$$ LISTEN_FDS=1 exec {} daemon --config {}",
            env!("CARGO_BIN_EXE_kuryr"),
            conf.display()
        ))
        .env("NOTIFY_SOCKET", notify)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(log).expect("log"));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: clear it by hand then.
            let ok = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, 3) >= 0
            };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("start kuryr daemon")
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_socket_activated_daemon_serves_the_passed_socket_notifies_ready_and_leaves_the_file() {
    common::require_lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = std::path::PathBuf::from(format!(
        "/run/docker/plugins/{}.sock",
        common::unique("kuryract")
    ));
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind as systemd would");
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _gone = Gone(sock.clone());
    let notify_path = dir.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let conf = dir.path().join("kuryr.conf");
    // The socket path kuryr would bind itself is elsewhere: only the passed one may answer.
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nplugin_socket = {}/unused.sock\n",
            dir.path().display()
        ),
    )
    .expect("conf");
    let log = dir.path().join("kuryr.log");
    let mut child = spawn_socket_activated(&listener, &notify_path, &conf, &log);
    drop(listener);
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap_or_else(|e| {
        let _ = child.kill();
        panic!(
            "no READY=1 from kuryr ({e}):\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    let (status, body) =
        common::post(&sock, "/Plugin.Activate", "").expect("the passed socket answers");
    assert_eq!(status, 200, "{body}");
    assert!(
        !dir.path().join("unused.sock").exists(),
        "kuryr bound its own socket besides the passed one"
    );
    common::stop(&mut child);
    assert!(
        sock.exists(),
        "kuryr removed the socket the service manager owns"
    );
}

#[test]
fn under_systemd_stderr_lines_leave_the_timestamp_to_journald() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    // An unknown key makes the daemon log a warning first; the unreachable Northbound then
    // stops it, so no lab is needed.
    std::fs::write(&conf, "[DEFAULT]\nfrobnicate = 1\n").expect("conf");
    let warning = |journal: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kuryr"));
        cmd.args(["daemon", "--nb", "tcp:127.0.0.1:1", "--config"])
            .arg(&conf)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM");
        if journal {
            cmd.env("JOURNAL_STREAM", "8:12345");
        }
        let out = cmd.output().expect("run kuryr daemon");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| l.contains("frobnicate"))
            .unwrap_or_else(|| panic!("no warning line: {}", String::from_utf8_lossy(&out.stderr)))
            .to_string()
    };
    // Outside systemd the line starts with its timestamp (after any colour codes).
    let plain = warning(false);
    let mut text = String::new();
    let mut in_escape = false;
    for c in plain.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (false, c) => text.push(c),
            (true, _) => {}
        }
    }
    let year = text.get(..5).unwrap_or_default();
    assert!(
        year.len() == 5 && year[..4].chars().all(|c| c.is_ascii_digit()) && year.ends_with('-'),
        "outside systemd a line starts with its timestamp: {plain:?}"
    );
    let journal = warning(true);
    assert!(
        journal.trim_start().starts_with("WARN") && !journal.contains('\u{1b}'),
        "under systemd: no timestamp, no colours: {journal:?}"
    );
}
