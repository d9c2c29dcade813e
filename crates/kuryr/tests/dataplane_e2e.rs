//! The data plane never depends on the agent: two containers ping each other every 10 ms and
//! hold a TCP connection exchanging a message every 10 ms while kuryr is killed (`kill -9`) and
//! started again 20 times. Not one ping or message may be lost.
mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The TCP side, run in the client container's network namespace: connects once, sends a
/// numbered line every 10 ms, reads its echo, and prints JSON figures at the end.
const TCP_CLIENT: &str = r#"
import json, socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection((host, port), timeout=5)
s.settimeout(5)
f = s.makefile("rwb")
sent = echoed = errors = 0
worst = 0.0
end = time.monotonic() + seconds
while time.monotonic() < end:
    t = time.monotonic()
    try:
        f.write(b"%d\n" % sent); f.flush(); sent += 1
        line = f.readline()
        if line.strip() == str(sent - 1).encode():
            echoed += 1
        else:
            errors += 1
            break
    except OSError as e:
        errors += 1
        print(json.dumps({"error": str(e)}), file=sys.stderr)
        break
    worst = max(worst, time.monotonic() - t)
    time.sleep(max(0.0, 0.01 - (time.monotonic() - t)))
print(json.dumps({"sent": sent, "echoed": echoed, "errors": errors, "worst_ms": worst * 1000}))
"#;

/// The container's init process, for `nsenter --net`.
fn pid_of(c: &Container) -> String {
    docker_ok(&["inspect", "-f", "{{.State.Pid}}", &c.name])
}

fn in_netns(pid: &str, cmd: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.args(["-t", pid, "-n", "--"]).args(cmd);
    c
}

/// Kills the child when the test ends, passed or failed.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// "N packets transmitted, M received" out of ping's summary.
fn ping_counts(summary: &str) -> Option<(u64, u64)> {
    let line = summary
        .lines()
        .find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().ok());
    Some((nums.next()??, nums.next()??))
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn traffic_between_containers_survives_twenty_kills_of_kuryr() {
    let mut d = Daemon::start(&[]);
    let net = d.network(&["--subnet", "10.196.0.0/24"]);
    let a = Container::run(&net, &[]);
    let b = Container::run(&net, &[]);
    let ib = b.ip(&net);
    assert!(a.pings(&ib), "no traffic before the test even starts");
    let (pa, pb) = (pid_of(&a), pid_of(&b));

    // An echo server in b; a client in a holding one connection; a 10 ms ping from a to b.
    let port = "9196";
    let _server = Reaped(
        in_netns(
            &pb,
            &["socat", &format!("TCP-LISTEN:{port},reuseaddr"), "EXEC:cat"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat in b"),
    );
    wait_until("the echo server listens", Duration::from_secs(10), || {
        in_netns(&pb, &["ss", "-ltn", &format!("sport = :{port}")])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(port))
            .unwrap_or(false)
    });
    let seconds = 30u32;
    let client = in_netns(
        &pa,
        &[
            "/usr/bin/python3",
            "-c",
            TCP_CLIENT,
            &ib,
            port,
            &seconds.to_string(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("TCP client in a");
    let count = (seconds * 100).to_string();
    let ping = in_netns(
        &pa,
        &["ping", "-q", "-i", "0.01", "-W", "1", "-c", &count, &ib],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("ping in a");

    // 20 kills and restarts while both run (each restart waits for the socket to answer).
    let started = Instant::now();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        d.kill9();
        std::thread::sleep(Duration::from_millis(200));
        d.spawn();
    }
    let restarts = started.elapsed();
    assert!(
        restarts < Duration::from_secs(u64::from(seconds) - 5),
        "the 20 restarts took {restarts:?}, longer than the traffic ran: nothing was proven"
    );

    let ping = ping.wait_with_output().expect("ping finishes");
    let client = client.wait_with_output().expect("TCP client finishes");
    let summary = String::from_utf8_lossy(&ping.stdout);
    let (sent, received) = ping_counts(&summary)
        .unwrap_or_else(|| panic!("no ping summary: {summary} {:?}", ping.stderr));
    let tcp: serde_json::Value = serde_json::from_slice(&client.stdout).unwrap_or_else(|e| {
        panic!(
            "TCP client output unreadable ({e}): {} {}",
            String::from_utf8_lossy(&client.stdout),
            String::from_utf8_lossy(&client.stderr)
        )
    });
    println!(
        "20 kills of kuryr in {restarts:?}: ping {received}/{sent} received; TCP {}",
        tcp
    );
    assert_eq!(sent, u64::from(seconds) * 100, "{summary}");
    assert_eq!(
        received, sent,
        "pings lost while kuryr was killed: {summary}"
    );
    assert_eq!(tcp["errors"], 0, "the TCP connection broke: {tcp}");
    assert!(
        tcp["echoed"].as_u64().unwrap_or(0) > 1000,
        "too few TCP messages to prove anything: {tcp}"
    );
    assert_eq!(tcp["echoed"], tcp["sent"], "{tcp}");

    // The last daemon still serves: a new container joins and reaches both.
    let c = Container::run(&net, &[]);
    assert!(
        c.pings(&ib) && c.pings(&a.ip(&net)),
        "no traffic after the restarts"
    );
}
