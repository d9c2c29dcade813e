//! "The outside": a network namespace the host reaches only through ordinary routing (a veth
//! with a /30 of its own, no bridge of kuryr's), standing for another machine. The test talks
//! to it from a thread that entered the namespace, so listeners see real peer addresses.
use super::run;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

static NEXT: AtomicU8 = AtomicU8::new(0);

pub struct Outside {
    pub ns: String,
    host_if: String,
    /// The namespace standing for the host (another chassis'), or `None` for this host.
    host_ns: Option<String>,
    /// The host's address on the link: what the outside sees egress come from, and where it
    /// reaches published ports.
    pub host_ip: Ipv4Addr,
    pub ip: Ipv4Addr,
    /// The same in IPv6 (fd30:0:N::/64).
    pub host_ip6: Ipv6Addr,
    pub ip6: Ipv6Addr,
}

fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread inside network namespace `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

impl Outside {
    /// A new outside namespace on 172.30.N.0/30 (N unique in this test process).
    pub fn new() -> Outside {
        Outside::new_on(None)
    }

    /// The same, reached from the host namespace `host_ns` (another chassis) instead.
    pub fn new_on(host_ns: Option<&str>) -> Outside {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{n}", std::process::id() % 10000);
        let o = Outside {
            ns: format!("kout{id}"),
            host_if: format!("ko{id}h"),
            host_ip: Ipv4Addr::new(172, 30, n, 1),
            ip: Ipv4Addr::new(172, 30, n, 2),
            host_ip6: Ipv6Addr::new(0xfd30, 0, u16::from(n), 0, 0, 0, 0, 1),
            ip6: Ipv6Addr::new(0xfd30, 0, u16::from(n), 0, 0, 0, 0, 2),
            host_ns: host_ns.map(str::to_string),
        };
        let peer = format!("ko{id}o");
        o.remove();
        ip(&["netns", "add", &o.ns]);
        ip(&[
            "link", "add", &o.host_if, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &o.ns]);
        let host_side = |args: &[&str]| match &o.host_ns {
            Some(h) => {
                let mut a = vec!["-n", h.as_str()];
                a.extend_from_slice(args);
                ip(&a);
            }
            None => ip(args),
        };
        if let Some(h) = &o.host_ns {
            ip(&["link", "set", &o.host_if, "netns", h]);
        }
        host_side(&[
            "addr",
            "add",
            &format!("{}/30", o.host_ip),
            "dev",
            &o.host_if,
        ]);
        let six = format!("{}/64", o.host_ip6);
        host_side(&["addr", "add", &six, "dev", &o.host_if, "nodad"]);
        host_side(&["link", "set", &o.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut a = vec!["netns", "exec", &o.ns, "ip"];
            a.extend_from_slice(args);
            ip(&a);
        };
        inside(&["addr", "add", &format!("{}/30", o.ip), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "via", &o.host_ip.to_string()]);
        let six = format!("{}/64", o.ip6);
        inside(&["addr", "add", &six, "dev", &peer, "nodad"]);
        inside(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &o.host_ip6.to_string(),
        ]);
        o
    }

    fn remove(&self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.ns]));
        let _ = run(Command::new("ip").args(["link", "del", &self.host_if]));
        if let Some(h) = &self.host_ns {
            let _ = run(Command::new("ip").args(["-n", h, "link", "del", &self.host_if]));
        }
    }

    /// Listens on `port` inside the outside namespace; the handle yields the peer address of
    /// the first connection within `timeout` (after sending it "hello"), or `None`.
    pub fn accept_one(
        &self,
        port: u16,
        timeout: Duration,
    ) -> std::thread::JoinHandle<Option<SocketAddr>> {
        self.accept_one_on(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port, timeout)
    }

    /// [`Outside::accept_one`] on one address (`::` for IPv6).
    pub fn accept_one_on(
        &self,
        addr: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> std::thread::JoinHandle<Option<SocketAddr>> {
        let (tx, rx) = mpsc::channel();
        let h = in_netns(&self.ns, move || {
            let l = TcpListener::bind((addr, port)).expect("listen in the outside");
            l.set_nonblocking(true).expect("nonblocking");
            let _ = tx.send(());
            let start = Instant::now();
            while start.elapsed() < timeout {
                match l.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.write_all(b"hello\n");
                        return Some(peer);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            None
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the outside listener did not start");
        h
    }

    /// An HTTP GET of `/index.html` from the outside to `addr:port`: the body, or the error.
    pub fn http_get(&self, addr: Ipv4Addr, port: u16) -> Result<String, String> {
        in_netns(&self.ns, move || {
            let mut s = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(3))
                .map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .map_err(|e| e.to_string())?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut body = String::new();
            s.read_to_string(&mut body).map_err(|e| e.to_string())?;
            Ok(body)
        })
        .join()
        .unwrap_or_else(|_| Err("the outside thread panicked".into()))
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        self.remove();
    }
}
