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
    /// For large set columns, where each element sits: a diff then costs O(elements changed)
    /// instead of a scan of the whole set (a switch's ports, a pool's addresses).
    set_positions: HashMap<Uuid, HashMap<String, HashMap<String, usize>>>,
}

/// Sets at least this large get a position index.
const INDEXED_SET: usize = 32;

fn atom_key(atom: &Value) -> String {
    match atom {
        Value::String(s) => format!("s:{s}"),
        Value::Array(a) if a.len() == 2 => format!("{}:{}", a[0].as_str().unwrap_or("?"), a[1]),
        other => other.to_string(),
    }
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

    /// Whether set column `column` of row `uuid` holds `atom`: a hash lookup for large sets
    /// that have been changed by a diff, a scan otherwise.
    pub fn set_contains(&self, uuid: &Uuid, column: &str, atom: &Value) -> bool {
        if let Some(index) = self
            .set_positions
            .get(uuid)
            .and_then(|cols| cols.get(column))
        {
            return index.contains_key(&atom_key(atom));
        }
        self.rows
            .get(uuid)
            .and_then(|r| r.get(column))
            .is_some_and(|v| atoms(v).contains(&atom))
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
        self.set_positions.remove(uuid);
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

    /// Changes a row in place: the columns are copied only if a reader still holds the row.
    fn modify(&mut self, uuid: Uuid, change: impl FnOnce(&mut Map<String, Value>)) {
        let Some(arc) = self.rows.get_mut(&uuid) else {
            let mut columns = Map::new();
            change(&mut columns);
            self.put(Row { uuid, columns });
            return;
        };
        let before = Self::index_keys(arc);
        let row = Arc::make_mut(arc);
        change(&mut row.columns);
        let after = Self::index_keys(row);
        if before == after {
            return;
        }
        let (old_name, old_ext) = before;
        let (new_name, new_ext) = after;
        if old_name != new_name {
            if let Some(name) = old_name {
                if let Some(set) = self.by_name.get_mut(&name) {
                    set.remove(&uuid);
                    if set.is_empty() {
                        self.by_name.remove(&name);
                    }
                }
            }
            if let Some(name) = new_name {
                self.by_name.entry(name).or_default().insert(uuid);
            }
        }
        for kv in old_ext.iter().filter(|kv| !new_ext.contains(kv)) {
            if let Some(set) = self.by_external_id.get_mut(kv) {
                set.remove(&uuid);
                if set.is_empty() {
                    self.by_external_id.remove(kv);
                }
            }
            if !new_ext.iter().any(|(k, _)| k == &kv.0) {
                if let Some(set) = self.by_external_key.get_mut(&kv.0) {
                    set.remove(&uuid);
                    if set.is_empty() {
                        self.by_external_key.remove(&kv.0);
                    }
                }
            }
        }
        for kv in new_ext.into_iter().filter(|kv| !old_ext.contains(kv)) {
            self.by_external_key
                .entry(kv.0.clone())
                .or_default()
                .insert(uuid);
            self.by_external_id.entry(kv).or_default().insert(uuid);
        }
    }

    fn put(&mut self, row: Row) {
        let uuid = row.uuid;
        self.remove(&uuid);
        self.set_positions.remove(&uuid);
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
                    let mut positions = table.set_positions.remove(&uuid).unwrap_or_default();
                    table.modify(uuid, |columns| {
                        for (col, d) in diff {
                            let kind = schema.column(tname, col).unwrap_or(ColumnKind::Scalar);
                            if kind == ColumnKind::Set {
                                apply_set_diff(columns, col, d, &mut positions);
                            } else {
                                apply_diff(columns, col, d, kind);
                            }
                        }
                    });
                    if !positions.is_empty() {
                        table.set_positions.insert(uuid, positions);
                    }
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

/// Applies one column of an `update2` `modify` diff (ovsdb-server(7), "update2 notification"),
/// in place: a diff of k elements to a set of n costs n comparisons and no copy of the set.
fn apply_diff(columns: &mut Map<String, Value>, col: &str, diff: &Value, kind: ColumnKind) {
    match kind {
        ColumnKind::Scalar => {
            columns.insert(col.to_string(), diff.clone());
        }
        ColumnKind::Set => {
            let items = set_items_mut(columns, col);
            apply_diff_to_items(items, &atoms(diff));
        }
        ColumnKind::Map => {
            let items = map_items_mut(columns, col);
            for (k, v) in pairs(diff) {
                let found = items
                    .iter()
                    .position(|p| p.as_array().and_then(|kv| kv.first()) == Some(k));
                match found {
                    None => items.push(json!([k, v])),
                    Some(pos) if items[pos].get(1) == Some(v) => {
                        items.remove(pos);
                    }
                    Some(pos) => items[pos] = json!([k, v]),
                }
            }
        }
    }
}

/// A set diff: elements present go, elements absent come. Large sets keep a position index
/// across diffs (elements are swapped out, so their order is not kept); small ones are scanned.
fn apply_set_diff(
    columns: &mut Map<String, Value>,
    col: &str,
    diff: &Value,
    positions: &mut HashMap<String, HashMap<String, usize>>,
) {
    let items = set_items_mut(columns, col);
    let changes = atoms(diff);
    if items.len() + changes.len() < INDEXED_SET {
        positions.remove(col);
        apply_diff_to_items(items, &changes);
        return;
    }
    let index = positions.entry(col.to_string()).or_insert_with(|| {
        items
            .iter()
            .enumerate()
            .map(|(i, a)| (atom_key(a), i))
            .collect()
    });
    for atom in changes {
        let key = atom_key(atom);
        match index.remove(&key) {
            Some(i) if i < items.len() => {
                items.swap_remove(i);
                if let Some(moved) = items.get(i) {
                    index.insert(atom_key(moved), i);
                }
            }
            _ => {
                index.insert(key, items.len());
                items.push(atom.clone());
            }
        }
    }
}

fn apply_diff_to_items(items: &mut Vec<Value>, changes: &[&Value]) {
    for atom in changes {
        match items.iter().position(|a| a == *atom) {
            Some(pos) => {
                items.remove(pos);
            }
            None => items.push((*atom).clone()),
        }
    }
}

/// The element array of a set column, turning a bare atom or a missing column into a set.
fn set_items_mut<'a>(columns: &'a mut Map<String, Value>, col: &str) -> &'a mut Vec<Value> {
    let entry = columns
        .entry(col.to_string())
        .or_insert_with(|| json!(["set", []]));
    let is_set =
        matches!(entry, Value::Array(a) if a.len() == 2 && a[0] == "set" && a[1].is_array());
    if !is_set {
        let atom = std::mem::take(entry);
        *entry = json!(["set", [atom]]);
    }
    match entry {
        Value::Array(a) => match &mut a[1] {
            Value::Array(items) => items,
            _ => unreachable!("checked above"),
        },
        _ => unreachable!("checked above"),
    }
}

/// The pair array of a map column, creating an empty map when the column is missing or malformed.
fn map_items_mut<'a>(columns: &'a mut Map<String, Value>, col: &str) -> &'a mut Vec<Value> {
    let entry = columns
        .entry(col.to_string())
        .or_insert_with(|| json!(["map", []]));
    let is_map =
        matches!(entry, Value::Array(a) if a.len() == 2 && a[0] == "map" && a[1].is_array());
    if !is_map {
        *entry = json!(["map", []]);
    }
    match entry {
        Value::Array(a) => match &mut a[1] {
            Value::Array(items) => items,
            _ => unreachable!("checked above"),
        },
        _ => unreachable!("checked above"),
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
    fn optional_columns_take_the_new_value_from_a_diff() {
        // What ovsdb-server sends for Logical_Switch_Port `up` and `tag_request` (min 0,
        // max 1): the new value, not a symmetric difference, and an empty set when cleared.
        let s = Schema::parse(&json!({"name": "DB", "tables": {"T": {"columns": {
            "name": {"type": "string"},
            "up": {"type": {"key": "boolean", "min": 0, "max": 1}},
            "tag": {"type": {"key": {"type": "integer", "minInteger": 0, "maxInteger": 4095}, "min": 0, "max": 1}},
        }}}}))
        .unwrap();
        let mut r = Replica::new(["T".to_string()]);
        let row = |r: &Replica| r.table("T").one_by_name("p").unwrap();
        r.apply_update2(&json!({"T": {U1: {"insert": {"name": "p"}}}}), &s)
            .unwrap();
        assert_eq!(row(&r).bool("up"), None);
        for (diff, up, tag) in [
            (json!({"up": false}), Some(false), None),
            (json!({"tag": 5}), Some(false), Some(5)),
            (json!({"up": true}), Some(true), Some(5)),
            (json!({"tag": 6}), Some(true), Some(6)),
            (json!({"tag": ["set", []], "up": false}), Some(false), None),
        ] {
            r.apply_update2(&json!({"T": {U1: {"modify": diff.clone()}}}), &s)
                .unwrap();
            assert_eq!(
                (row(&r).bool("up"), row(&r).int("tag")),
                (up, tag),
                "after {diff}"
            );
        }
    }

    #[test]
    fn large_set_diffs_use_the_index_and_stay_correct() {
        let s = schema();
        let mut r = Replica::new(["T".to_string()]);
        let all: Vec<String> = (0..200).map(|i| format!("a{i}")).collect();
        r.apply_update2(
            &json!({"T": {U1: {"insert": {"name": "big", "tags": ["set", all]}}}}),
            &s,
        )
        .unwrap();
        // Remove every even element one diff at a time, add new ones, remove one of those.
        for i in (0..200).step_by(2) {
            r.apply_update2(
                &json!({"T": {U1: {"modify": {"tags": format!("a{i}")}}}}),
                &s,
            )
            .unwrap();
        }
        r.apply_update2(
            &json!({"T": {U1: {"modify": {"tags": ["set", ["n1", "n2", "a1"]]}}}}),
            &s,
        )
        .unwrap();
        let mut got = r.table("T").one_by_name("big").unwrap().strings("tags");
        got.sort();
        let mut want: Vec<String> = (3..200)
            .step_by(2)
            .map(|i| format!("a{i}"))
            .chain(["n1".to_string(), "n2".to_string()])
            .collect();
        want.sort();
        assert_eq!(got, want);
        // A full replacement drops the index; later diffs still apply to the new contents.
        r.apply_update1(&json!({"T": {U1: {"new": {"name": "big", "tags": ["set", ["x"]]}}}}))
            .unwrap();
        r.apply_update2(
            &json!({"T": {U1: {"modify": {"tags": ["set", ["y"]]}}}}),
            &s,
        )
        .unwrap();
        assert_eq!(
            r.table("T").one_by_name("big").unwrap().strings("tags"),
            vec!["x", "y"]
        );
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
