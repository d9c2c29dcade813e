//! The log line every call leaves. In its own test binary: tracing caches per-callsite interest
//! process-wide, so other tests' threads would make a scoped subscriber miss events.

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::{Failure, Harness, EID, NID};
use serde_json::{json, Value};

/// Collects what the JSON formatter writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_call_logs_one_line_with_method_ids_outcome_and_duration() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let h = Harness::start().await;
    h.driver.fail("Leave", Failure::Message("leave failed"));
    let ids = json!({"NetworkID": NID, "EndpointID": EID}).to_string();
    assert_eq!(
        h.post("/NetworkDriver.DeleteEndpoint", &ids).await.status,
        200
    );
    assert_eq!(h.post("/NetworkDriver.Leave", &ids).await.status, 500);
    h.shutdown().await.unwrap();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let calls: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["method"].is_string())
        .map(|v| v["fields"].clone())
        .collect();
    assert_eq!(calls.len(), 2, "one line per call:\n{text}");
    assert_eq!(calls[0]["method"], "NetworkDriver.DeleteEndpoint");
    assert_eq!(calls[0]["network_id"], NID);
    assert_eq!(calls[0]["endpoint_id"], EID);
    assert_eq!(calls[0]["outcome"], "ok");
    assert!(calls[0]["duration_ms"].as_f64().is_some(), "{}", calls[0]);
    assert_eq!(calls[1]["method"], "NetworkDriver.Leave");
    assert_eq!(calls[1]["outcome"], "error");
    assert_eq!(calls[1]["error"], "leave failed");
}
