//! A typed builder for `transact` (RFC 7047 section 5.2) and the parsing of its reply.
//!
//! Each builder method returns the index of its operation, which is how its result is read back
//! from [`TxnReply`].
use crate::datum::{as_uuid, Row};
use crate::error::Error;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// A `where` clause element: `[column, function, value]`.
pub type Cond = Value;
/// A mutation: `[column, mutator, value]`.
pub type Mutation = Value;

pub fn eq(column: &str, value: impl Into<Value>) -> Cond {
    json!([column, "==", value.into()])
}
pub fn ne(column: &str, value: impl Into<Value>) -> Cond {
    json!([column, "!=", value.into()])
}
pub fn includes(column: &str, value: impl Into<Value>) -> Cond {
    json!([column, "includes", value.into()])
}
pub fn excludes(column: &str, value: impl Into<Value>) -> Cond {
    json!([column, "excludes", value.into()])
}
/// The condition that selects one row by uuid.
pub fn by_uuid(u: Uuid) -> Cond {
    json!(["_uuid", "==", crate::datum::uuid(u)])
}

/// Adds elements to a set or pairs to a map.
pub fn mutate_insert(column: &str, value: Value) -> Mutation {
    json!([column, "insert", value])
}
/// Removes elements from a set, or keys (given as a set) or pairs (a map) from a map.
pub fn mutate_delete(column: &str, value: Value) -> Mutation {
    json!([column, "delete", value])
}
pub fn mutate_add(column: &str, n: i64) -> Mutation {
    json!([column, "+=", n])
}

#[derive(Debug, Clone)]
struct OpMeta {
    op: &'static str,
    table: String,
}

#[derive(Debug, Clone)]
pub struct Txn {
    database: String,
    ops: Vec<Value>,
    meta: Vec<OpMeta>,
}

impl Txn {
    pub fn new(database: &str) -> Txn {
        Txn {
            database: database.to_string(),
            ops: Vec::new(),
            meta: Vec::new(),
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    fn push(&mut self, op: &'static str, table: &str, v: Value) -> usize {
        self.ops.push(v);
        self.meta.push(OpMeta {
            op,
            table: table.to_string(),
        });
        self.ops.len() - 1
    }

    /// Inserts `row`; `uuid_name` lets later operations refer to it with `named-uuid`.
    pub fn insert(&mut self, table: &str, row: Value, uuid_name: Option<&str>) -> usize {
        let mut op = json!({"op": "insert", "table": table, "row": row});
        if let Some(name) = uuid_name {
            op["uuid-name"] = json!(name);
        }
        self.push("insert", table, op)
    }

    pub fn select(&mut self, table: &str, conds: Vec<Cond>, columns: Option<&[&str]>) -> usize {
        let mut op = json!({"op": "select", "table": table, "where": conds});
        if let Some(cols) = columns {
            op["columns"] = json!(cols);
        }
        self.push("select", table, op)
    }

    pub fn update(&mut self, table: &str, conds: Vec<Cond>, row: Value) -> usize {
        self.push(
            "update",
            table,
            json!({"op": "update", "table": table, "where": conds, "row": row}),
        )
    }

    pub fn mutate(&mut self, table: &str, conds: Vec<Cond>, mutations: Vec<Mutation>) -> usize {
        self.push(
            "mutate",
            table,
            json!({"op": "mutate", "table": table, "where": conds, "mutations": mutations}),
        )
    }

    pub fn delete(&mut self, table: &str, conds: Vec<Cond>) -> usize {
        self.push(
            "delete",
            table,
            json!({"op": "delete", "table": table, "where": conds}),
        )
    }

    /// Fails the whole transaction unless the rows matching `conds`, projected on `columns`,
    /// equal `rows` (`until` "==") or differ from them ("!="). A timeout of 0 checks once.
    pub fn wait(
        &mut self,
        table: &str,
        conds: Vec<Cond>,
        columns: &[&str],
        until_equal: bool,
        rows: Vec<Value>,
        timeout_ms: u64,
    ) -> usize {
        let until = if until_equal { "==" } else { "!=" };
        self.push(
            "wait",
            table,
            json!({"op": "wait", "table": table, "where": conds, "columns": columns,
                   "until": until, "rows": rows, "timeout": timeout_ms}),
        )
    }

    /// Fails the transaction at once if any row matches `conds` (a uniqueness guard).
    pub fn wait_absent(&mut self, table: &str, conds: Vec<Cond>) -> usize {
        self.wait(table, conds, &["_uuid"], true, Vec::new(), 0)
    }

    pub fn comment(&mut self, text: &str) -> usize {
        self.push("comment", "", json!({"op": "comment", "comment": text}))
    }

    /// Fails the transaction unless this session owns `lock`.
    pub fn assert_lock(&mut self, lock: &str) -> usize {
        self.push("assert", "", json!({"op": "assert", "lock": lock}))
    }

    pub(crate) fn params(&self) -> Value {
        let mut p = vec![json!(self.database)];
        p.extend(self.ops.iter().cloned());
        Value::Array(p)
    }

    /// Turns the server's reply into per-operation results, or the typed error of the
    /// operation that failed.
    pub(crate) fn parse_reply(&self, result: &Value) -> Result<TxnReply, Error> {
        let items = result
            .as_array()
            .ok_or_else(|| Error::Protocol(format!("transact reply is not an array: {result}")))?;
        let mut results = Vec::with_capacity(self.ops.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(err) = item.get("error") {
                let error = err.as_str().unwrap_or("unknown error").to_string();
                let details = item
                    .get("details")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                return Err(match self.meta.get(i) {
                    Some(meta) => Error::Operation {
                        index: i,
                        op: meta.op.to_string(),
                        table: meta.table.clone(),
                        error,
                        details,
                    },
                    None => Error::Commit {
                        database: self.database.clone(),
                        error,
                        details,
                    },
                });
            }
            if i < self.ops.len() {
                results.push(OpResult::parse(item)?);
            }
        }
        if results.len() != self.ops.len() {
            return Err(Error::Protocol(format!(
                "transact reply has {} results for {} operations",
                results.len(),
                self.ops.len()
            )));
        }
        Ok(TxnReply { results })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpResult {
    /// The uuid of an inserted row.
    pub uuid: Option<Uuid>,
    /// The rows of a select.
    pub rows: Vec<Row>,
    /// How many rows an update, mutate or delete touched.
    pub count: Option<u64>,
}

impl OpResult {
    fn parse(v: &Value) -> Result<OpResult, Error> {
        let empty = Map::new();
        let obj = match v {
            Value::Object(o) => o,
            Value::Null => &empty,
            other => {
                return Err(Error::Protocol(format!(
                    "operation result is not an object: {other}"
                )))
            }
        };
        let uuid = obj.get("uuid").and_then(as_uuid);
        let count = obj.get("count").and_then(Value::as_u64);
        let rows = match obj.get("rows") {
            Some(Value::Array(rows)) => rows
                .iter()
                .map(|r| {
                    let columns = r.as_object().cloned().ok_or_else(|| {
                        Error::Protocol(format!("selected row is not an object: {r}"))
                    })?;
                    let uuid = columns.get("_uuid").and_then(as_uuid).unwrap_or_default();
                    Ok(Row { uuid, columns })
                })
                .collect::<Result<_, Error>>()?,
            _ => Vec::new(),
        };
        Ok(OpResult { uuid, rows, count })
    }
}

#[derive(Debug, Clone, Default)]
pub struct TxnReply {
    pub results: Vec<OpResult>,
}

impl TxnReply {
    /// The uuid of the row inserted by operation `index`.
    pub fn uuid(&self, index: usize) -> Option<Uuid> {
        self.results.get(index).and_then(|r| r.uuid)
    }

    pub fn rows(&self, index: usize) -> &[Row] {
        self.results
            .get(index)
            .map(|r| r.rows.as_slice())
            .unwrap_or(&[])
    }

    pub fn count(&self, index: usize) -> Option<u64> {
        self.results.get(index).and_then(|r| r.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_emits_rfc7047_operations() {
        let mut t = Txn::new("OVN_Northbound");
        let i = t.insert("Logical_Switch", json!({"name": "a"}), Some("ls"));
        let w = t.wait_absent("Logical_Switch", vec![eq("name", "a")]);
        assert_eq!((i, w), (0, 1));
        let p = t.params();
        assert_eq!(p[0], "OVN_Northbound");
        assert_eq!(p[1]["uuid-name"], "ls");
        assert_eq!(
            p[2],
            json!({"op": "wait", "table": "Logical_Switch", "where": [["name", "==", "a"]],
            "columns": ["_uuid"], "until": "==", "rows": [], "timeout": 0})
        );
    }

    #[test]
    fn operation_error_names_the_operation_and_table() {
        let mut t = Txn::new("DB");
        t.insert("A", json!({}), None);
        t.wait_absent("B", vec![eq("name", "x")]);
        let err = t
            .parse_reply(
                &json!([{"uuid": ["uuid", "11111111-1111-1111-1111-111111111111"]},
                                 {"error": "timed out", "details": "\"wait\" timed out"}]),
            )
            .unwrap_err();
        assert!(err.is_conflict());
        let msg = err.to_string();
        assert!(
            msg.contains("operation 1 (wait on table B) failed: timed out"),
            "{msg}"
        );
    }

    #[test]
    fn commit_error_after_all_results() {
        let mut t = Txn::new("DB");
        t.insert("A", json!({}), None);
        let err = t
            .parse_reply(
                &json!([{"uuid": ["uuid", "11111111-1111-1111-1111-111111111111"]},
                                 {"error": "referential integrity violation", "details": "x"}]),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Commit { .. }), "{err:?}");
    }

    #[test]
    fn results_are_read_by_index() {
        let mut t = Txn::new("DB");
        t.insert("A", json!({}), None);
        t.select("A", vec![], None);
        t.delete("A", vec![]);
        let r = t
            .parse_reply(&json!([{"uuid": ["uuid", "11111111-1111-1111-1111-111111111111"]},
                                 {"rows": [{"_uuid": ["uuid", "11111111-1111-1111-1111-111111111111"], "name": "x"}]},
                                 {"count": 1}]))
            .unwrap();
        assert!(r.uuid(0).is_some());
        assert_eq!(r.rows(1)[0].str("name"), Some("x"));
        assert_eq!(r.count(2), Some(1));
    }

    #[test]
    fn short_or_malformed_replies_are_protocol_errors() {
        let mut t = Txn::new("DB");
        t.insert("A", json!({}), None);
        t.insert("A", json!({}), None);
        assert!(matches!(
            t.parse_reply(&json!([{}])),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            t.parse_reply(&json!({"x": 1})),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            t.parse_reply(&json!([1, 2])),
            Err(Error::Protocol(_))
        ));
    }
}
