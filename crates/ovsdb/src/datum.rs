//! OVSDB data in its JSON form (RFC 7047 section 5.1) and typed access to rows.
//!
//! Values are kept as the server sends them (`"x"`, `["set", [...]]`, `["map", [[k, v], ...]]`,
//! `["uuid", "..."]`) and read through accessors that accept every legal spelling, so the replica
//! never has to guess a column's type when storing it.
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// `["uuid", "<uuid>"]`.
pub fn uuid(u: Uuid) -> Value {
    json!(["uuid", u.to_string()])
}

/// `["named-uuid", "<name>"]`: refers to a row inserted earlier in the same transaction.
pub fn named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

/// `["set", [...]]` of the given atoms.
pub fn set<I: IntoIterator<Item = Value>>(items: I) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

/// The empty set, which is also how an optional column is cleared.
pub fn empty_set() -> Value {
    json!(["set", []])
}

/// `["map", [[k, v], ...]]` of string pairs.
pub fn map<K: AsRef<str>, V: AsRef<str>, I: IntoIterator<Item = (K, V)>>(pairs: I) -> Value {
    let pairs: Vec<Value> = pairs
        .into_iter()
        .map(|(k, v)| json!([k.as_ref(), v.as_ref()]))
        .collect();
    json!(["map", pairs])
}

/// The atoms of a datum: a bare atom is a one-element set.
pub fn atoms(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "set" => match &a[1] {
            Value::Array(items) => items.iter().collect(),
            _ => Vec::new(),
        },
        other => vec![other],
    }
}

/// The pairs of a map datum.
pub fn pairs(v: &Value) -> Vec<(&Value, &Value)> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "map" => match &a[1] {
            Value::Array(items) => items
                .iter()
                .filter_map(|p| match p {
                    Value::Array(kv) if kv.len() == 2 => Some((&kv[0], &kv[1])),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// A `["uuid", ...]` or `["named-uuid", ...]` atom's uuid.
pub fn as_uuid(v: &Value) -> Option<Uuid> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "uuid" => a[1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// One row of a table: its uuid and its columns in OVSDB JSON form.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub uuid: Uuid,
    pub columns: Map<String, Value>,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.columns.get(column)
    }

    /// A string column, or the one element of an optional string column.
    pub fn str(&self, column: &str) -> Option<&str> {
        self.get(column)
            .and_then(|v| atoms(v).into_iter().next())
            .and_then(Value::as_str)
    }

    pub fn int(&self, column: &str) -> Option<i64> {
        self.get(column)
            .and_then(|v| atoms(v).into_iter().next())
            .and_then(Value::as_i64)
    }

    pub fn bool(&self, column: &str) -> Option<bool> {
        self.get(column)
            .and_then(|v| atoms(v).into_iter().next())
            .and_then(Value::as_bool)
    }

    /// The string elements of a set column.
    pub fn strings(&self, column: &str) -> Vec<String> {
        self.get(column)
            .map(|v| {
                atoms(v)
                    .into_iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The uuids of a reference (set) column.
    pub fn uuids(&self, column: &str) -> Vec<Uuid> {
        self.get(column)
            .map(|v| atoms(v).into_iter().filter_map(as_uuid).collect())
            .unwrap_or_default()
    }

    /// A string-to-string map column such as `external_ids`.
    pub fn string_map(&self, column: &str) -> BTreeMap<String, String> {
        self.get(column)
            .map(|v| {
                pairs(v)
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One key of a string map column, without building the whole map.
    pub fn map_value(&self, column: &str, key: &str) -> Option<&str> {
        self.get(column)
            .and_then(|v| pairs(v).into_iter().find(|(k, _)| k.as_str() == Some(key)))
            .and_then(|(_, v)| v.as_str())
    }

    pub fn external_id(&self, key: &str) -> Option<&str> {
        self.map_value("external_ids", key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(columns: Value) -> Row {
        Row {
            uuid: Uuid::nil(),
            columns: columns.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn accessors_read_every_spelling() {
        let r = row(json!({
            "name": "ls0",
            "opt_empty": ["set", []],
            "opt_one": ["set", ["x"]],
            "tag": 7,
            "up": ["set", [true]],
            "addresses": ["set", ["a", "b"]],
            "single": "c",
            "ports": ["set", [["uuid", "1a0a4fd8-4a11-4b68-9ad0-0f5ad7b2e1a5"]]],
            "port": ["uuid", "2b0a4fd8-4a11-4b68-9ad0-0f5ad7b2e1a5"],
            "external_ids": ["map", [["owner", "kuryr"], ["n", "1"]]],
        }));
        assert_eq!(r.str("name"), Some("ls0"));
        assert_eq!(r.str("opt_empty"), None);
        assert_eq!(r.str("opt_one"), Some("x"));
        assert_eq!(r.int("tag"), Some(7));
        assert_eq!(r.bool("up"), Some(true));
        assert_eq!(r.strings("addresses"), vec!["a", "b"]);
        assert_eq!(r.strings("single"), vec!["c"]);
        assert_eq!(r.uuids("ports").len(), 1);
        assert_eq!(r.uuids("port").len(), 1);
        assert_eq!(r.external_id("owner"), Some("kuryr"));
        assert_eq!(r.string_map("external_ids").len(), 2);
        assert_eq!(r.external_id("missing"), None);
        assert_eq!(r.str("missing"), None);
    }

    #[test]
    fn builders_produce_rfc7047_json() {
        assert_eq!(set([json!(1), json!(2)]), json!(["set", [1, 2]]));
        assert_eq!(map([("k", "v")]), json!(["map", [["k", "v"]]]));
        assert_eq!(named_uuid("row1"), json!(["named-uuid", "row1"]));
        assert_eq!(
            uuid(Uuid::nil()),
            json!(["uuid", "00000000-0000-0000-0000-000000000000"])
        );
    }
}
