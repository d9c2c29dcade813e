//! Entry points for the fuzz targets in `fuzz/` and for replaying their corpora in tests: each
//! takes arbitrary bytes, must never panic, and checks what must hold whatever the input.

use bytes::BytesMut;
use serde_json::{json, Value};
use tokio_util::codec::Decoder;

use crate::codec::JsonCodec;
use crate::replica::Replica;
use crate::schema::Schema;

/// Frames `data` twice, whole and in pieces whose sizes come from its first byte, and checks
/// that both give the same messages and the same verdict.
pub fn framing(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = frame(stream, &[stream.len().max(1)]);
    // Piece sizes 1..=16 cycling from the seed, as a socket might deliver them.
    let sizes: Vec<usize> = (0..16)
        .map(|i| 1 + (usize::from(seed) + i * 7) % 16)
        .collect();
    let split = frame(stream, &sizes);
    assert_eq!(
        whole, split,
        "framing depends on where the stream was split"
    );
}

/// Messages and whether the stream ended cleanly, feeding `stream` in pieces of `sizes`.
fn frame(stream: &[u8], sizes: &[usize]) -> (Vec<Value>, bool) {
    let mut codec = JsonCodec::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => break,
                Err(_) => return (out, false),
            }
        }
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(v)) => {
            out.push(v);
            (out, true)
        }
        Ok(None) => (out, true),
        Err(_) => (out, false),
    }
}

/// Tables of the Northbound kuryr uses, with a set, a map and a scalar column each, so that
/// `update2` diffs of every kind are applied.
fn schema() -> Schema {
    let table = json!({"columns": {
        "name": {"type": "string"},
        "ports": {"type": {"key": {"type": "uuid"}, "min": 0, "max": "unlimited"}},
        "addresses": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
        "external_ids": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
        "tag": {"type": {"key": "integer", "min": 0, "max": 1}}
    }});
    let v = json!({"name": "OVN_Northbound", "version": "7.0.0", "tables": {
        "Logical_Switch": table.clone(),
        "Logical_Switch_Port": table.clone(),
        "Address_Set": table,
    }});
    Schema::parse(&v).unwrap_or_default()
}

/// Applies every JSON value in `data` to a replica as an update notification (`update2`, or
/// `update` when the first byte is odd), then reads the replica through every index.
pub fn update(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let schema = schema();
    let mut replica = Replica::new(schema.tables.keys().cloned());
    for value in serde_json::Deserializer::from_slice(rest).into_iter::<Value>() {
        let Ok(updates) = value else {
            break;
        };
        let _ = if mode % 2 == 1 {
            replica.apply_update1(&updates)
        } else {
            replica.apply_update2(&updates, &schema)
        };
    }
    for name in schema.tables.keys() {
        let table = replica.table(name);
        let mut seen = 0;
        for row in table.rows() {
            seen += 1;
            assert!(
                table.get(&row.uuid).is_some(),
                "{name}: row not found by uuid"
            );
            if let Some(n) = row.columns.get("name").and_then(Value::as_str) {
                assert!(
                    table.by_name(n).iter().any(|r| r.uuid == row.uuid),
                    "{name}: row not found by its name {n:?}"
                );
            }
            let _ = table.set_contains(&row.uuid, "ports", &json!(["uuid", row.uuid.to_string()]));
            let _ = table.by_external_key("kuryr:id");
        }
        assert_eq!(seen, table.len(), "{name}: len disagrees with rows");
    }
}
