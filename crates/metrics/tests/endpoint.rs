//! The scrape endpoint under a broken or hostile client: connections that send nothing or a
//! byte at a time are closed within the read timeout, and scrapes are answered meanwhile.

use std::sync::Arc;
use std::time::Duration;

use kuryr_http::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const QUICK: Limits = Limits {
    max_connections: 1024,
    read_timeout: Duration::from_secs(1),
};

/// A liveness bound, not a speed goal: a scrape that takes this long was not being served.
const SERVED_WITHIN: Duration = Duration::from_secs(10);

async fn start() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let refresh: kuryr_metrics::server::Refresh = Arc::new(|| Box::pin(async {}));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kuryr_metrics::server::serve_with(
        listener,
        refresh,
        QUICK,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    tokio::time::timeout(SERVED_WITHIN, async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    })
    .await
    .expect("a scrape is served while the hostile client holds its connections")
}

/// Whether the server closes `s` within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn silent_and_slow_connections_are_closed_and_scrapes_answered_meanwhile() {
    let (addr, _stop) = start().await;
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /met").await.expect("write");
    let reply = scrape(addr).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("# EOF"), "not the metrics text: {reply}");
    // A byte every 200 ms never completes a head within the read timeout.
    let dribble = tokio::spawn(async move {
        for b in b"rics HTTP/1.1\r\nHost: x\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        closed_within(&mut slow, Duration::from_secs(5)).await
    });
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "a silent connection stayed open past the read timeout"
        );
    }
    assert!(
        dribble.await.expect("the slow client"),
        "a connection sending a byte at a time stayed open past the read timeout"
    );
    let reply = scrape(addr).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
