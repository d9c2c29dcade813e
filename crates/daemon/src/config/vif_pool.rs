//! `[vif_pool]`: ports made ahead of time, with kuryr-kubernetes' key names. Pools are off
//! while `ports_pool_min` is 0 (the default).
use super::{ConfigError, Reader};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifPoolSettings {
    /// Ports each subnet's pool keeps ready on this host; 0: no pools.
    pub min: usize,
    /// Ports a pool keeps at most (released ports beyond it are deleted); 0: no limit but
    /// the subnet's share (see the README).
    pub max: usize,
    /// Ports created in one request when a pool refills.
    pub batch: usize,
    /// How often pools are checked and refilled besides when a port is taken.
    pub update_frequency: Duration,
}

impl Default for VifPoolSettings {
    fn default() -> VifPoolSettings {
        VifPoolSettings {
            min: 0,
            max: 0,
            batch: 10,
            update_frequency: Duration::from_secs(20),
        }
    }
}

impl VifPoolSettings {
    pub fn enabled(&self) -> bool {
        self.min > 0
    }
}

const SECTION: &str = "vif_pool";

pub(super) fn read(r: &Reader<'_>) -> Result<VifPoolSettings, ConfigError> {
    let mut p = VifPoolSettings::default();
    let count = |key: &str, max: usize, target: &mut usize| -> Result<(), ConfigError> {
        if let Some(v) = r.raw(SECTION, key) {
            *target = v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| r.err(SECTION, key, v, format!("expected 0 to {max}")))?;
        }
        Ok(())
    };
    count("ports_pool_min", 1000, &mut p.min)?;
    count("ports_pool_max", 10_000, &mut p.max)?;
    count("ports_pool_batch", 1000, &mut p.batch)?;
    r.seconds(
        SECTION,
        "ports_pool_update_frequency",
        &mut p.update_frequency,
    )?;
    if p.enabled() {
        if p.batch == 0 {
            return Err(r.err(
                SECTION,
                "ports_pool_batch",
                "0",
                "a pool that keeps ports ready needs a batch of at least 1",
            ));
        }
        if p.max != 0 && p.max < p.min {
            return Err(r.err(
                SECTION,
                "ports_pool_max",
                &p.max.to_string(),
                format!("below ports_pool_min ({}): raise it or set 0", p.min),
            ));
        }
        if p.update_frequency.is_zero() {
            return Err(r.err(
                SECTION,
                "ports_pool_update_frequency",
                "0",
                "expected a number of seconds above 0",
            ));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::time::Duration;

    const NEUTRON: &str = "[neutron]\nauth_type = none\nendpoint = http://127.0.0.1:9696\n";

    #[test]
    fn pools_are_off_by_default_and_read_with_kuryr_kubernetes_key_names() {
        let c = Config::parse(NEUTRON, "k.conf").unwrap();
        assert!(!c.vif_pool.enabled());
        let file = format!("{NEUTRON}[vif_pool]\nports_pool_min = 5\nports_pool_max = 20\nports_pool_batch = 4\nports_pool_update_frequency = 7\n");
        let c = Config::parse(&file, "k.conf").unwrap();
        assert!(c.vif_pool.enabled());
        assert_eq!(
            (c.vif_pool.min, c.vif_pool.max, c.vif_pool.batch),
            (5, 20, 4)
        );
        assert_eq!(c.vif_pool.update_frequency, Duration::from_secs(7));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn bad_pool_values_name_the_key_and_the_fix() {
        for (section, wanted) in [
            ("ports_pool_min = -1\n", "ports_pool_min"),
            ("ports_pool_min = lots\n", "expected 0 to 1000"),
            (
                "ports_pool_min = 5\nports_pool_max = 2\n",
                "below ports_pool_min",
            ),
            (
                "ports_pool_min = 5\nports_pool_batch = 0\n",
                "batch of at least 1",
            ),
            (
                "ports_pool_min = 5\nports_pool_update_frequency = 0\n",
                "above 0",
            ),
        ] {
            let file = format!("{NEUTRON}[vif_pool]\n{section}");
            let e = Config::parse(&file, "k.conf").unwrap_err().to_string();
            assert!(e.contains(wanted), "{section:?}: {e}");
            assert!(e.contains("[vif_pool]") || e.contains("vif_pool"), "{e}");
        }
    }

    #[test]
    fn the_ovn_mode_warns_about_pool_keys() {
        let c = Config::parse("[vif_pool]\nports_pool_min = 5\n", "k.conf").unwrap();
        assert!(
            c.warnings.iter().any(|w| w.contains("ports_pool_min")),
            "{:?}",
            c.warnings
        );
    }
}
