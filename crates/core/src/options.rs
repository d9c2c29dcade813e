//! The `-o` and `--ipam-opt` options kuryr reads, in kuryr's spelling and kuryr-libnetwork's
//! `neutron.*` spelling alike.
use std::collections::BTreeMap;

/// Every option kuryr knows, with its `neutron.*` alias.
pub const KNOWN: &[(&str, &str)] = &[
    ("kuryr.net.uuid", "neutron.net.uuid"),
    ("kuryr.net.name", "neutron.net.name"),
    ("kuryr.net.shared", "neutron.net.shared"),
    ("kuryr.pool.uuid", "neutron.pool.uuid"),
    ("kuryr.pool.name", "neutron.pool.name"),
    ("kuryr.pool.v6.uuid", "neutron.pool.v6.uuid"),
    ("kuryr.pool.v6.name", "neutron.pool.v6.name"),
    ("kuryr.subnet.uuid", "neutron.subnet.uuid"),
    ("kuryr.subnet.name", "neutron.subnet.name"),
    ("kuryr.subnet.v6.uuid", "neutron.subnet.v6.uuid"),
    ("kuryr.subnet.v6.name", "neutron.subnet.v6.name"),
    // The OVN mode's router; Neutron has no such option, so both spellings are kuryr's.
    ("kuryr.router", "kuryr.router"),
];

/// Options normalized to their `kuryr.*` spelling; unknown `kuryr.*`/`neutron.*` keys are an
/// error (a typo would otherwise silently create a new network), others belong to Docker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KuryrOptions(BTreeMap<String, String>);

impl KuryrOptions {
    pub fn parse(raw: &BTreeMap<String, String>) -> Result<KuryrOptions, String> {
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            if !(k.starts_with("kuryr.") || k.starts_with("neutron.")) {
                continue;
            }
            let Some((canonical, _)) = KNOWN.iter().find(|(a, b)| a == k || b == k) else {
                let names: Vec<&str> = KNOWN.iter().map(|(a, _)| *a).collect();
                return Err(format!(
                    "unknown option {k} (kuryr knows {}, and their neutron.* spellings)",
                    names.join(", ")
                ));
            };
            if v.trim().is_empty() {
                return Err(format!("option {k} has an empty value"));
            }
            if let Some(prev) = out.insert(canonical.to_string(), v.trim().to_string()) {
                if prev != v.trim() {
                    return Err(format!(
                        "option {canonical} is given twice with different values ({prev} and {v})"
                    ));
                }
            }
        }
        Ok(KuryrOptions(out))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn merged(mut self, other: &KuryrOptions) -> Result<KuryrOptions, String> {
        for (k, v) in &other.0 {
            match self.0.get(k) {
                Some(prev) if prev != v => {
                    return Err(format!(
                        "option {k} differs between -o ({prev}) and --ipam-opt ({v})"
                    ))
                }
                _ => {
                    self.0.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(self)
    }

    /// The pool name for one address family.
    pub fn pool_name(&self, v6: bool) -> Option<&str> {
        if v6 {
            self.get("kuryr.pool.v6.name")
        } else {
            self.get("kuryr.pool.name")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn neutron_spellings_are_aliases() {
        let o = KuryrOptions::parse(&map(&[
            ("neutron.net.name", "shared"),
            ("neutron.pool.v6.name", "p6"),
            ("com.docker.network.foo", "x"),
        ]))
        .unwrap();
        assert_eq!(o.get("kuryr.net.name"), Some("shared"));
        assert_eq!(o.pool_name(true), Some("p6"));
        assert_eq!(o.pool_name(false), None);
    }

    #[test]
    fn typos_and_conflicts_are_errors() {
        let err = KuryrOptions::parse(&map(&[("kuryr.net.nmae", "x")])).unwrap_err();
        assert!(err.contains("unknown option kuryr.net.nmae"), "{err}");
        let err = KuryrOptions::parse(&map(&[("kuryr.net.name", "a"), ("neutron.net.name", "b")]))
            .unwrap_err();
        assert!(err.contains("given twice"), "{err}");
        let err = KuryrOptions::parse(&map(&[("kuryr.pool.name", " ")])).unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let a = KuryrOptions::parse(&map(&[("kuryr.pool.name", "a")])).unwrap();
        let b = KuryrOptions::parse(&map(&[("neutron.pool.name", "b")])).unwrap();
        assert!(a.merged(&b).unwrap_err().contains("differs"));
    }
}
