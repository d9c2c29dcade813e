//! A server that misbehaves: every malformed or truncated message becomes an error the caller
//! can read, never a panic or a hang.
use kuryr_ovsdb::{parse_remotes, Client, Config};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// Answers `get_schema` with `reply` (raw bytes), then optionally closes.
async fn fake_server(reply: &'static [u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply).await;
            let _ = s.shutdown().await;
        }
    });
    (dir, format!("unix:{}", path.display()))
}

async fn connect_error(reply: &'static [u8]) -> String {
    let (_dir, remote) = fake_server(reply).await;
    let mut cfg = Config::new(
        parse_remotes(&remote).unwrap(),
        "OVN_Northbound",
        &["Logical_Switch"],
    );
    cfg.connect_timeout = Duration::from_millis(500);
    match Client::connect(cfg).await {
        Ok(_) => panic!(
            "connected to a server that sent {:?}",
            String::from_utf8_lossy(reply)
        ),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn garbage_truncation_and_bad_shapes_are_errors() {
    let cases: &[&[u8]] = &[
        b"this is not json",
        br#"{"id":1,"result":{"name":"OVN_Northbound","tables":{"Logical_Switch":{"col"#,
        br#"{"id":1,"result":{"name":"x"},"error":null}"#,
        br#"{"id":1,"result":null,"error":"unknown database"}"#,
        br#"{"id":1,"result":{"name":"x","tables":{"T":{"columns":{"c":{}}}}},"error":null}"#,
        b"]",
        b"\x00\x01\x02",
    ];
    for reply in cases {
        let err = connect_error(reply).await;
        assert!(err.contains("OVN_Northbound is not reachable"), "{err}");
    }
}

#[tokio::test]
async fn a_valid_schema_followed_by_a_bad_monitor_reply_is_an_error() {
    let schema = json!({"name": "OVN_Northbound", "version": "1", "tables": {"Logical_Switch": {"columns": {"name": {"type": "string"}}}}});
    let mut bytes = serde_json::to_vec(&json!({"id": 1, "result": schema, "error": null})).unwrap();
    // _Server monitor: unknown database; then a monitor_cond_since reply whose updates are not an object.
    bytes.extend_from_slice(br#"{"id":2,"result":null,"error":"unknown database"}"#);
    bytes.extend_from_slice(br#"{"id":3,"result":[false,"x",{"Logical_Switch":{"not-a-uuid":{"insert":{}}}}],"error":null}"#);
    let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let err = connect_error(leaked).await;
    assert!(
        err.contains("not a uuid") || err.contains("not reachable"),
        "{err}"
    );
    let _: Value = json!(null);
}
