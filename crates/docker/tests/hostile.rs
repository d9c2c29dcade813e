//! A broken or hostile client on the plugin socket: connections that send nothing, a body of
//! 100 MB, a byte at a time. None of them may stop other calls from being served, and each is
//! closed within the documented bounds.

mod common;

use std::time::Duration;

use common::{docker_request, send, Harness};
use kuryr_docker::Limits;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Short bounds so the tests take seconds; the defaults are [`Limits::DEFAULT`].
const QUICK: Limits = Limits {
    max_connections: 1024,
    read_timeout: Duration::from_secs(1),
};

/// A liveness bound, not a speed goal: a call that takes this long was not being served.
const SERVED_WITHIN: Duration = Duration::from_secs(10);

async fn capabilities_answered(h: &Harness) {
    let r = tokio::time::timeout(SERVED_WITHIN, h.post("/NetworkDriver.GetCapabilities", ""))
        .await
        .expect("a call is served while the hostile client holds its connections");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["Scope"], json!("local"));
}

/// Reads until the server closes `stream`, returning what it sent; fails if it stays open
/// past `within`.
async fn closed_by_server(stream: &mut UnixStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open past {within:?}"
    );
    got
}

/// Both ends of 1000 connections live in this process: lift the soft limit on open files to
/// the hard one (a shell's default soft limit, 1024, is too low for 2000).
fn enough_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    assert!(
        lim.rlim_cur >= 2200,
        "the open-file limit ({}) is below what 1000 connections need: raise it (ulimit -Hn)",
        lim.rlim_cur
    );
}

#[tokio::test]
async fn a_thousand_silent_connections_do_not_stop_calls_and_are_closed() {
    enough_files();
    let h = Harness::start_with(QUICK).await;
    let mut silent = Vec::new();
    for _ in 0..1000 {
        silent.push(UnixStream::connect(&h.socket).await.expect("connect"));
    }
    capabilities_answered(&h).await;
    // Every silent connection is closed once the read timeout passes, with nothing sent.
    for stream in &mut silent {
        let got = closed_by_server(stream, Duration::from_secs(15)).await;
        assert!(
            got.is_empty() || String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
            "a silent connection got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    capabilities_answered(&h).await;
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_until_some_end() {
    let h = Harness::start_with(Limits {
        max_connections: 8,
        read_timeout: Duration::from_secs(1),
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(UnixStream::connect(&h.socket).await.expect("connect"));
    }
    // Accepted only to be closed: the ninth sees the close, not a hang.
    let mut ninth = UnixStream::connect(&h.socket).await.expect("connect");
    let _ = ninth
        .write_all(&docker_request("/Plugin.Activate", ""))
        .await;
    let got = closed_by_server(&mut ninth, SERVED_WITHIN).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    // The held ones time out, and the slots are free again.
    for stream in &mut held {
        closed_by_server(stream, Duration::from_secs(15)).await;
    }
    capabilities_answered(&h).await;
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_100_mb_body_is_refused_with_413_and_calls_go_on() {
    let h = Harness::start_with(QUICK).await;
    let chunk = vec![b'x'; 1 << 20];

    // Declared up front: refused from the head alone.
    let mut declared = UnixStream::connect(&h.socket).await.expect("connect");
    let head =
        "POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: \r\nContent-Length: 104857600\r\n\r\n";
    declared.write_all(head.as_bytes()).await.unwrap();
    let sender = tokio::spawn(async move {
        for _ in 0..100 {
            if declared.write_all(&chunk).await.is_err() {
                break;
            }
        }
        declared
    });
    capabilities_answered(&h).await;
    let mut declared = sender.await.unwrap();
    let got = closed_by_server(&mut declared, SERVED_WITHIN).await;
    let reply = String::from_utf8_lossy(&got);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply:?}");
    assert!(
        reply.contains("RequestPool: request body larger than 4194304 bytes"),
        "{reply:?}"
    );

    // Chunked, no length given: refused once it passes the limit.
    let mut chunked = UnixStream::connect(&h.socket).await.expect("connect");
    let head = "POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: \r\nTransfer-Encoding: chunked\r\n\r\n";
    chunked.write_all(head.as_bytes()).await.unwrap();
    let sender = tokio::spawn(async move {
        let mut piece = format!("{:x}\r\n", 1 << 20).into_bytes();
        piece.extend(std::iter::repeat_n(b'{', 1 << 20));
        piece.extend_from_slice(b"\r\n");
        for _ in 0..100 {
            if chunked.write_all(&piece).await.is_err() {
                break;
            }
        }
        chunked
    });
    let mut chunked = sender.await.unwrap();
    let got = closed_by_server(&mut chunked, SERVED_WITHIN).await;
    let reply = String::from_utf8_lossy(&got);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply:?}");
    assert!(
        reply.contains("CreateNetwork: request body larger than"),
        "{reply:?}"
    );
    assert!(h.driver.seen().is_empty(), "{:?}", h.driver.seen());
    capabilities_answered(&h).await;
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_byte_at_a_time_is_cut_off_while_calls_go_on() {
    let h = Harness::start_with(QUICK).await;

    // The head trickles in: the connection is closed when the read timeout passes.
    let mut slow_head = UnixStream::connect(&h.socket).await.expect("connect");
    let request = docker_request("/NetworkDriver.GetCapabilities", "");
    let whole = request.len();
    let trickle = tokio::spawn(async move {
        let mut written = 0;
        for byte in request {
            if slow_head.write_all(&[byte]).await.is_err() {
                break;
            }
            written += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (slow_head, written)
    });
    capabilities_answered(&h).await;
    let (mut slow_head, written) = trickle.await.unwrap();
    assert!(
        written < whole,
        "the server read a head trickling in for {}s to the end",
        whole / 5
    );
    let got = closed_by_server(&mut slow_head, SERVED_WITHIN).await;
    let reply = String::from_utf8_lossy(&got);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "a head that never arrived in full got {reply:?}"
    );

    // The head arrives, the body trickles: 408 naming the call, the driver never asked.
    let mut slow_body = UnixStream::connect(&h.socket).await.expect("connect");
    let body = json!({"NetworkID": "n", "Options": {}}).to_string();
    let head = format!(
        "POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: \r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for byte in body.into_bytes() {
            if slow_body.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        slow_body
    });
    capabilities_answered(&h).await;
    let mut slow_body = trickle.await.unwrap();
    let got = closed_by_server(&mut slow_body, SERVED_WITHIN).await;
    let reply = String::from_utf8_lossy(&got);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    assert!(
        reply.contains("CreateNetwork: request body not received within 1s"),
        "{reply:?}"
    );
    assert!(h.driver.seen().is_empty(), "{:?}", h.driver.seen());

    // A well-behaved client on a kept-alive connection is unaffected by the bounds.
    let mut kept = UnixStream::connect(&h.socket).await.expect("connect");
    for _ in 0..3 {
        let r = send(&mut kept, &docker_request("/Plugin.Activate", "")).await;
        assert_eq!(r.status, 200);
    }
    h.shutdown().await.unwrap();
}
