//! In-memory copy of the monitored tables, kept up to date from `update`, `update2` and
//! `update3` notifications, with lookups by `name` and by `external_ids` key.
use crate::datum::{atoms, pairs, Row};
use crate::schema::{ColumnKind, Schema};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Table {
    rows: HashMap<Uuid, Arc<Row>>,
    by_name: HashMap<String, BTreeSet<Uuid>>,
    by_external_id: HashMap<(String, String), BTreeSet<Uuid>>,
    by_external_key: HashMap<String, BTreeSet<Uuid>>,
}

impl Table {
    pub fn get(&self, uuid: &Uuid) -> Option<Arc<Row>> {
        self.rows.get(uuid).cloned()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn rows(&self) -> impl Iterator<Item = &Arc<Row>> {
        self.rows.values()
    }

    /// Rows whose `name` column equals `name` (names are not unique in every schema).
    pub fn by_name(&self, name: &str) -> Vec<Arc<Row>> {
        self.lookup(self.by_name.get(name))
    }

    /// The one row named `name`, if exactly one exists.
    pub fn one_by_name(&self, name: &str) -> Option<Arc<Row>> {
        match self.by_name.get(name) {
            Some(set) if set.len() == 1 => set.iter().next().and_then(|u| self.get(u)),
            _ => None,
        }
    }

    /// Rows whose `external_ids` has `key` = `value`.
    pub fn by_external_id(&self, key: &str, value: &str) -> Vec<Arc<Row>> {
        self.lookup(
            self.by_external_id
                .get(&(key.to_string(), value.to_string())),
        )
    }

    /// Rows whose `external_ids` has `key`, whatever its value.
    pub fn by_external_key(&self, key: &str) -> Vec<Arc<Row>> {
        self.lookup(self.by_external_key.get(key))
    }

    fn lookup(&self, set: Option<&BTreeSet<Uuid>>) -> Vec<Arc<Row>> {
        set.map(|s| s.iter().filter_map(|u| self.get(u)).collect())
            .unwrap_or_default()
    }

    fn index_keys(row: &Row) -> (Option<String>, Vec<(String, String)>) {
        let name = row.get("name").and_then(Value::as_str).map(str::to_string);
        let ext = row
            .get("external_ids")
            .map(|v| {
                pairs(v)
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        (name, ext)
    }

    fn remove(&mut self, uuid: &Uuid) -> Option<Arc<Row>> {
        let row = self.rows.remove(uuid)?;
        let (name, ext) = Self::index_keys(&row);
        if let Some(name) = name {
            if let Some(set) = self.by_name.get_mut(&name) {
                set.remove(uuid);
                if set.is_empty() {
                    self.by_name.remove(&name);
                }
            }
        }
        for kv in ext {
            if let Some(set) = self.by_external_key.get_mut(&kv.0) {
                set.remove(uuid);
                if set.is_empty() {
                    self.by_external_key.remove(&kv.0);
                }
            }
            if let Some(set) = self.by_external_id.get_mut(&kv) {
                set.remove(uuid);
                if set.is_empty() {
                    self.by_external_id.remove(&kv);
                }
            }
        }
        Some(row)
    }

    fn put(&mut self, row: Row) {
        let uuid = row.uuid;
        self.remove(&uuid);
        let (name, ext) = Self::index_keys(&row);
        if let Some(name) = name {
            self.by_name.entry(name).or_default().insert(uuid);
        }
        for kv in ext {
            self.by_external_key
                .entry(kv.0.clone())
                .or_default()
                .insert(uuid);
            self.by_external_id.entry(kv).or_default().insert(uuid);
        }
        self.rows.insert(uuid, Arc::new(row));
    }
}

/// The monitored tables of one database.
#[derive(Debug, Default)]
pub struct Replica {
    tables: HashMap<String, Table>,
    empty: Table,
}

impl Replica {
    pub fn new<I: IntoIterator<Item = String>>(tables: I) -> Replica {
        Replica {
            tables: tables.into_iter().map(|t| (t, Table::default())).collect(),
            empty: Table::default(),
        }
    }

    /// A table; an unmonitored table reads as empty.
    pub fn table(&self, name: &str) -> &Table {
        self.tables.get(name).unwrap_or(&self.empty)
    }

    pub(crate) fn clear(&mut self) {
        for t in self.tables.values_mut() {
            *t = Table::default();
        }
    }

    /// Applies a `table-updates` object (RFC 7047 `update`, with `old`/`new`).
    pub(crate) fn apply_update1(&mut self, updates: &Value) -> Result<usize, String> {
        let mut n = 0;
        for (tname, rows) in objects(updates, "table-updates")? {
            let table = self.tables.entry(tname.clone()).or_default();
            for (uuid, change) in objects(rows, tname)? {
                let uuid = parse_uuid(uuid, tname)?;
                match change.get("new") {
                    Some(Value::Object(new)) => table.put(Row {
                        uuid,
                        columns: new.clone(),
                    }),
                    Some(other) => return Err(format!("{tname} row {uuid}: new is {other}")),
                    None => {
                        table.remove(&uuid);
                    }
                }
                n += 1;
            }
        }
        Ok(n)
    }

    /// Applies a `table-updates2` object (`initial`/`insert`/`modify`/`delete`).
    pub(crate) fn apply_update2(
        &mut self,
        updates: &Value,
        schema: &Schema,
    ) -> Result<usize, String> {
        let mut n = 0;
        for (tname, rows) in objects(updates, "table-updates2")? {
            let table = self.tables.entry(tname.clone()).or_default();
            for (uuid, change) in objects(rows, tname)? {
                let uuid = parse_uuid(uuid, tname)?;
                let change = change
                    .as_object()
                    .ok_or_else(|| format!("{tname} row {uuid}: update is not an object"))?;
                if let Some(row) = change.get("initial").or_else(|| change.get("insert")) {
                    let columns = row
                        .as_object()
                        .ok_or_else(|| format!("{tname} row {uuid}: row is not an object"))?;
                    table.put(Row {
                        uuid,
                        columns: columns.clone(),
                    });
                } else if let Some(diff) = change.get("modify") {
                    let diff = diff
                        .as_object()
                        .ok_or_else(|| format!("{tname} row {uuid}: modify is not an object"))?;
                    let mut columns = table
                        .get(&uuid)
                        .map(|r| r.columns.clone())
                        .unwrap_or_default();
                    for (col, d) in diff {
                        let kind = schema.column(tname, col).unwrap_or(ColumnKind::Scalar);
                        apply_diff(&mut columns, col, d, kind);
                    }
                    table.put(Row { uuid, columns });
                } else if change.contains_key("delete") {
                    table.remove(&uuid);
                } else {
                    return Err(format!(
                        "{tname} row {uuid}: unknown update {}",
                        Value::Object(change.clone())
                    ));
                }
                n += 1;
            }
        }
        Ok(n)
    }
}

fn objects<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{what} is not an object: {v}"))
}

fn parse_uuid(s: &str, table: &str) -> Result<Uuid, String> {
    s.parse()
        .map_err(|_| format!("{table}: row id {s:?} is not a uuid"))
}

/// Applies one column of an `update2` `modify` diff (ovsdb-server(7), "update2 notification").
fn apply_diff(columns: &mut Map<String, Value>, col: &str, diff: &Value, kind: ColumnKind) {
    match kind {
        ColumnKind::Scalar => {
            columns.insert(col.to_string(), diff.clone());
        }
        ColumnKind::Set => {
            let mut items: Vec<Value> = columns
                .get(col)
                .map(|v| atoms(v).into_iter().cloned().collect())
                .unwrap_or_default();
            for atom in atoms(diff) {
                if let Some(pos) = items.iter().position(|a| a == atom) {
                    items.remove(pos);
                } else {
                    items.push(atom.clone());
                }
            }
            columns.insert(col.to_string(), json!(["set", items]));
        }
        ColumnKind::Map => {
            let mut items: Vec<(Value, Value)> = columns
                .get(col)
                .map(|v| {
                    pairs(v)
                        .into_iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in pairs(diff) {
                match items.iter().position(|(ik, _)| ik == k) {
                    None => items.push((k.clone(), v.clone())),
                    Some(pos) if &items[pos].1 == v => {
                        items.remove(pos);
                    }
                    Some(pos) => items[pos].1 = v.clone(),
                }
            }
            let items: Vec<Value> = items.into_iter().map(|(k, v)| json!([k, v])).collect();
            columns.insert(col.to_string(), json!(["map", items]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";

    fn schema() -> Schema {
        Schema::parse(&json!({"name": "DB", "tables": {"T": {"columns": {
            "name": {"type": "string"},
            "tags": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
            "external_ids": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
        }}}}))
        .unwrap()
    }

    #[test]
    fn update2_insert_modify_delete_keep_indexes_right() {
        let s = schema();
        let mut r = Replica::new(["T".to_string()]);
        r.apply_update2(
            &json!({"T": {U1: {"insert": {"name": "a", "tags": ["set", ["x", "y"]],
            "external_ids": ["map", [["k", "1"], ["gone", "z"]]]}}}}),
            &s,
        )
        .unwrap();
        assert_eq!(r.table("T").by_name("a").len(), 1);
        assert_eq!(r.table("T").by_external_id("k", "1").len(), 1);

        // Set diff: "x" removed, "z" added. Map diff: k changed, gone removed (same value), new added.
        r.apply_update2(
            &json!({"T": {U1: {"modify": {"name": "b", "tags": ["set", ["x", "z"]],
            "external_ids": ["map", [["k", "2"], ["gone", "z"], ["new", "n"]]]}}}}),
            &s,
        )
        .unwrap();
        let t = r.table("T");
        let row = t.one_by_name("b").unwrap();
        assert!(t.by_name("a").is_empty());
        assert_eq!(row.strings("tags"), vec!["y", "z"]);
        assert_eq!(row.external_id("k"), Some("2"));
        assert_eq!(row.external_id("gone"), None);
        assert_eq!(row.external_id("new"), Some("n"));
        assert!(t.by_external_id("k", "1").is_empty());
        assert_eq!(t.by_external_id("k", "2").len(), 1);
        assert_eq!(t.by_external_key("k").len(), 1);
        assert!(t.by_external_key("gone").is_empty());

        // A one-element set diff arrives as a bare atom.
        r.apply_update2(&json!({"T": {U1: {"modify": {"tags": "y"}}}}), &s)
            .unwrap();
        assert_eq!(
            r.table("T").one_by_name("b").unwrap().strings("tags"),
            vec!["z"]
        );

        r.apply_update2(&json!({"T": {U1: {"delete": null}}}), &s)
            .unwrap();
        assert!(r.table("T").is_empty());
        assert!(r.table("T").by_external_id("k", "2").is_empty());
    }

    #[test]
    fn update1_new_replaces_and_missing_new_deletes() {
        let mut r = Replica::new(["T".to_string()]);
        r.apply_update1(&json!({"T": {U1: {"new": {"name": "a"}}}}))
            .unwrap();
        r.apply_update1(&json!({"T": {U1: {"old": {"name": "a"}, "new": {"name": "b"}}}}))
            .unwrap();
        assert_eq!(r.table("T").one_by_name("b").unwrap().uuid.to_string(), U1);
        r.apply_update1(&json!({"T": {U1: {"old": {"name": "b"}}}}))
            .unwrap();
        assert!(r.table("T").is_empty());
    }

    #[test]
    fn malformed_updates_are_errors() {
        let s = schema();
        let mut r = Replica::new(["T".to_string()]);
        for bad in [
            json!(1),
            json!({"T": 2}),
            json!({"T": {"not-a-uuid": {"insert": {}}}}),
            json!({"T": {U1: {"frobnicate": {}}}}),
            json!({"T": {U1: {"insert": 5}}}),
        ] {
            assert!(r.apply_update2(&bad, &s).is_err(), "accepted {bad}");
        }
        assert!(r.apply_update1(&json!({"T": {U1: {"new": 3}}})).is_err());
    }
}
