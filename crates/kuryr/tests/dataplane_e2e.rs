//! The data plane never depends on the agent: two containers ping each other every 10 ms and
//! hold a TCP connection exchanging a message every 10 ms while kuryr is killed (`kill -9`) and
//! started again 20 times. Not one ping or message may be lost. And what an ovs-vswitchd
//! restart costs them: the longest gap between two answered pings, reported; the TCP
//! connection must survive it.
mod common;

use common::*;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests disturb each other's traffic (kills of kuryr, an ovs-vswitchd restart).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

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

/// Two containers on a network of `d`, an echo server in b, a TCP client in a holding one
/// connection and a 10 ms ping from a to b, for `seconds`.
struct Traffic {
    net: Network,
    a: Container,
    b: Container,
    ib: String,
    _server: Reaped,
    client: Child,
    ping: Child,
    seconds: u32,
}

impl Traffic {
    /// `ping_args` go before ping's count and target (`-q` for a summary only).
    fn start(d: &Daemon, subnet: &str, port: &str, seconds: u32, ping_args: &[&str]) -> Traffic {
        let net = d.network(&["--subnet", subnet]);
        let a = Container::run(&net, &[]);
        let b = Container::run(&net, &[]);
        let ib = b.ip(&net);
        assert!(a.pings(&ib), "no traffic before the test even starts");
        let (pa, pb) = (pid_of(&a), pid_of(&b));
        let server = Reaped(
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
        let mut args = vec!["ping", "-i", "0.01", "-W", "1"];
        args.extend_from_slice(ping_args);
        args.extend_from_slice(&["-c", &count, &ib]);
        let ping = in_netns(&pa, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ping in a");
        Traffic {
            net,
            a,
            b,
            ib,
            _server: server,
            client,
            ping,
            seconds,
        }
    }

    /// Waits for both to finish: ping's output and the TCP client's figures.
    fn finish(
        self,
    ) -> (
        Output,
        serde_json::Value,
        Network,
        Container,
        Container,
        String,
    ) {
        let ping = self.ping.wait_with_output().expect("ping finishes");
        let client = self.client.wait_with_output().expect("TCP client finishes");
        let tcp: serde_json::Value = serde_json::from_slice(&client.stdout).unwrap_or_else(|e| {
            panic!(
                "TCP client output unreadable ({e}): {} {}",
                String::from_utf8_lossy(&client.stdout),
                String::from_utf8_lossy(&client.stderr)
            )
        });
        assert_eq!(tcp["errors"], 0, "the TCP connection broke: {tcp}");
        assert!(
            tcp["echoed"].as_u64().unwrap_or(0) > u64::from(self.seconds) * 30,
            "too few TCP messages to prove anything: {tcp}"
        );
        assert_eq!(tcp["echoed"], tcp["sent"], "{tcp}");
        (ping, tcp, self.net, self.a, self.b, self.ib)
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn traffic_between_containers_survives_twenty_kills_of_kuryr() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = Daemon::start(&[]);
    let seconds = 30u32;
    let traffic = Traffic::start(&d, "10.196.0.0/24", "9196", seconds, &["-q"]);

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

    let (ping, tcp, net, a, _b, ib) = traffic.finish();
    let summary = String::from_utf8_lossy(&ping.stdout);
    let (sent, received) = ping_counts(&summary)
        .unwrap_or_else(|| panic!("no ping summary: {summary} {:?}", ping.stderr));
    println!(
        "20 kills of kuryr in {restarts:?}: ping {received}/{sent} received; TCP {}",
        tcp
    );
    assert_eq!(sent, u64::from(seconds) * 100, "{summary}");
    assert_eq!(
        received, sent,
        "pings lost while kuryr was killed: {summary}"
    );

    // The last daemon still serves: a new container joins and reaches both.
    let c = Container::run(&net, &[]);
    assert!(
        c.pings(&ib) && c.pings(&a.ip(&net)),
        "no traffic after the restarts"
    );
}

/// The times (`ping -D`) of the answered pings, in seconds.
fn reply_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn an_ovs_vswitchd_restart_costs_running_containers_a_measured_gap() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started_by_lab = std::fs::read_to_string("/run/kuryr-lab/started").unwrap_or_default();
    assert!(
        started_by_lab.lines().any(|l| l.trim() == "ovs-vswitchd"),
        "this test restarts ovs-vswitchd, so it must be the lab's: run `make lab`"
    );
    let d = Daemon::start(&[]);
    let traffic = Traffic::start(&d, "10.196.1.0/24", "9197", 15, &["-D"]);
    std::thread::sleep(Duration::from_secs(3));
    let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lab/lab.sh");
    let restart = Instant::now();
    succeeded(
        run(Command::new("bash").args([lab, "restart", "ovs-vswitchd"])),
        "lab.sh restart ovs-vswitchd",
    );
    let restart = restart.elapsed();

    let (ping, tcp, net, a, b, ib) = traffic.finish();
    let out = String::from_utf8_lossy(&ping.stdout);
    let times = reply_times(&out);
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max);
    let answered = times.len();
    println!(
        "ovs-vswitchd killed and started again in {restart:?}: {answered}/1500 pings answered, longest gap between two answers {:.0} ms; TCP {tcp}",
        gap * 1000.0
    );
    assert!(answered > 1000, "too few pings answered: {answered}\n{out}");
    let last = times.last().copied().unwrap_or(0.0);
    let first = times.first().copied().unwrap_or(0.0);
    assert!(
        last - first > 13.0,
        "pings stopped being answered after the restart\n{out}"
    );
    // Bounded: the containers' traffic comes back by itself within seconds.
    assert!(gap < 10.0, "a gap of {gap:.1} s\n{out}");
    let c = Container::run(&net, &[]);
    assert!(
        c.pings(&ib) && c.pings(&a.ip(&net)) && b.pings(&a.ip(&net)),
        "no traffic after ovs-vswitchd came back"
    );
}
