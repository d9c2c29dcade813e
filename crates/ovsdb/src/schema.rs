//! The parts of a database schema the client needs: which columns are sets or maps, because
//! `update2` diffs are applied differently to those than to scalar columns.
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Exactly one atom.
    Scalar,
    /// Zero or more atoms (including optional columns, min 0 max 1).
    Set,
    Map,
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub name: String,
    pub version: String,
    pub tables: HashMap<String, HashMap<String, ColumnKind>>,
}

impl Schema {
    pub fn parse(v: &Value) -> Result<Schema, String> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("schema has no name")?;
        let version = v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let tables = v
            .get("tables")
            .and_then(Value::as_object)
            .ok_or("schema has no tables")?;
        let mut out = HashMap::new();
        for (tname, t) in tables {
            let columns = t
                .get("columns")
                .and_then(Value::as_object)
                .ok_or_else(|| format!("table {tname} has no columns"))?;
            let mut cols = HashMap::new();
            for (cname, c) in columns {
                let ty = c
                    .get("type")
                    .ok_or_else(|| format!("column {tname}.{cname} has no type"))?;
                cols.insert(cname.clone(), column_kind(ty));
            }
            out.insert(tname.clone(), cols);
        }
        Ok(Schema {
            name: name.to_string(),
            version,
            tables: out,
        })
    }

    pub fn column(&self, table: &str, column: &str) -> Option<ColumnKind> {
        self.tables.get(table)?.get(column).copied()
    }
}

/// How an `update2` diff of the column applies. ovsdb-server sends the new value itself for
/// any column of at most one element, optional ones included (`"min": 0, "max": 1`, such as
/// Logical_Switch_Port `up` or `tag`): only columns of several elements get a
/// symmetric-difference diff (`ovsdb_datum_diff` diffs only composite types).
fn column_kind(ty: &Value) -> ColumnKind {
    let Some(obj) = ty.as_object() else {
        return ColumnKind::Scalar; // "type": "string"
    };
    let max = match obj.get("max") {
        None => Some(1),
        Some(Value::String(s)) if s == "unlimited" => None,
        Some(v) => v.as_u64(),
    };
    if max == Some(1) {
        ColumnKind::Scalar
    } else if obj.contains_key("value") {
        ColumnKind::Map
    } else {
        ColumnKind::Set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn column_kinds_follow_min_max_and_value() {
        let s = Schema::parse(&json!({
            "name": "DB", "version": "1.0.0",
            "tables": {"T": {"columns": {
                "a": {"type": "string"},
                "b": {"type": {"key": "string"}},
                "c": {"type": {"key": "string", "min": 0, "max": 1}},
                "d": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
                "e": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
            }}}
        }))
        .unwrap();
        assert_eq!(s.column("T", "a"), Some(ColumnKind::Scalar));
        assert_eq!(s.column("T", "b"), Some(ColumnKind::Scalar));
        // Optional: diffs carry the new value, as for a scalar.
        assert_eq!(s.column("T", "c"), Some(ColumnKind::Scalar));
        assert_eq!(s.column("T", "d"), Some(ColumnKind::Set));
        assert_eq!(s.column("T", "e"), Some(ColumnKind::Map));
        assert_eq!(s.column("T", "zz"), None);
    }

    #[test]
    fn schema_without_tables_is_rejected() {
        assert!(Schema::parse(&json!({"name": "x"})).is_err());
        assert!(Schema::parse(&json!(3)).is_err());
    }
}
