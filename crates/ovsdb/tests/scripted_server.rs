//! A scripted server that speaks the protocol correctly up to a point, for what a real
//! ovsdb-server will not do on demand: ask the client for an `echo`, or go silent.
use kuryr_ovsdb::{parse_remotes, Client, Config};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// Reads the next complete JSON value from the stream.
async fn next_msg(s: &mut UnixStream, buf: &mut Vec<u8>) -> Option<Value> {
    loop {
        let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
        if let Some(Ok(v)) = it.next() {
            let used = it.byte_offset();
            buf.drain(..used);
            return Some(v);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Completes the client's handshake, then sends `after` (if any) and reports every later
/// message the client sends; it never answers the client's own `echo`.
async fn server(
    after: Option<Value>,
) -> (tempfile::TempDir, String, mpsc::UnboundedReceiver<Value>) {
    scripted(after, false).await
}

/// As [`server`], answering the client's `echo` when `answer_echo`: alive, yet never answering
/// anything else (a server stuck in the middle of a transaction).
async fn scripted(
    after: Option<Value>,
    answer_echo: bool,
) -> (tempfile::TempDir, String, mpsc::UnboundedReceiver<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::new();
        let schema = json!({"name": "OVN_Northbound", "version": "1", "tables": {"Logical_Switch": {"columns": {"name": {"type": "string"}}}}});
        while let Some(msg) = next_msg(&mut s, &mut buf).await {
            let id = msg["id"].clone();
            let reply = match msg["method"].as_str() {
                Some("get_schema") => json!({"id": id, "result": schema, "error": null}),
                Some("monitor_cond") if msg["params"][0] == "_Server" => {
                    json!({"id": id, "result": null, "error": "unknown database"})
                }
                Some("monitor_cond_since") => {
                    json!({"id": id, "result": [false, "00000000-0000-0000-0000-000000000000", {}], "error": null})
                }
                Some("echo") if answer_echo => {
                    json!({"id": id, "result": msg["params"].clone(), "error": null})
                }
                _ => {
                    let _ = tx.send(msg);
                    continue;
                }
            };
            let handshake_done = msg["method"] == "monitor_cond_since";
            let _ = s.write_all(reply.to_string().as_bytes()).await;
            if handshake_done {
                if let Some(m) = &after {
                    let _ = s.write_all(m.to_string().as_bytes()).await;
                }
            }
        }
    });
    (dir, format!("unix:{}", path.display()), rx)
}

fn config(remote: &str, probe: Duration) -> Config {
    let mut c = Config::new(
        parse_remotes(remote).unwrap(),
        "OVN_Northbound",
        &["Logical_Switch"],
    );
    c.inactivity_probe = probe;
    c.connect_timeout = Duration::from_secs(2);
    c
}

#[tokio::test]
async fn the_client_answers_the_servers_echo() {
    let (_dir, remote, mut rx) = server(Some(
        json!({"method": "echo", "params": ["are you there"], "id": "srv-1"}),
    ))
    .await;
    let _client = Client::connect(config(&remote, Duration::from_secs(60)))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no reply to echo")
        .unwrap();
    assert_eq!(reply["id"], "srv-1");
    assert_eq!(reply["result"], json!(["are you there"]));
}

#[tokio::test]
async fn a_silent_server_is_probed_and_dropped() {
    let probe = Duration::from_millis(300);
    let (_dir, remote, mut rx) = server(None).await;
    let client = Client::connect(config(&remote, probe)).await.unwrap();
    let started = Instant::now();
    // After `probe` of silence the client sends an echo...
    let echo = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no echo probe")
        .unwrap();
    assert_eq!(echo["method"], "echo");
    assert!(
        started.elapsed() >= probe / 2,
        "probed too early: {:?}",
        started.elapsed()
    );
    // ...and, unanswered, drops the connection and says why.
    let mut st = client.watch_state();
    tokio::time::timeout(Duration::from_secs(5), st.wait_for(|s| !s.connected))
        .await
        .expect("still connected to a dead server")
        .unwrap();
    let why = client.state().last_error;
    assert!(why.contains("inactivity probe"), "{why}");
}

#[tokio::test]
async fn a_transaction_the_server_never_answers_fails_with_a_timeout() {
    let (_dir, remote, mut rx) = scripted(None, true).await;
    let mut c = config(&remote, Duration::from_millis(300));
    c.request_timeout = Duration::from_secs(1);
    let client = Client::connect(c).await.unwrap();
    let txn = {
        let mut t = kuryr_ovsdb::Txn::new("OVN_Northbound");
        t.insert("Logical_Switch", json!({"name": "stuck"}), None);
        t
    };
    // Two at once: each fails on its own, naming what timed out; neither hangs.
    let (a, b) = tokio::join!(client.transact(&txn), client.transact(&txn));
    for r in [a, b] {
        let e = r
            .expect_err("a transaction nobody answered succeeded")
            .to_string();
        assert!(e.contains("transact on OVN_Northbound"), "{e}");
    }
    let sent = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the server never saw the transaction")
        .unwrap();
    assert_eq!(sent["method"], "transact");
    // The server answers echo: the connection stays up, the replica stays readable.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(client.state().connected, "{:?}", client.state());
    assert_eq!(client.replica().table("Logical_Switch").len(), 0);
}
