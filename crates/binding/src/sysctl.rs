//! Where kernel settings are written: `/proc/sys`, or the directory `KURYR_PROC_SYS` names.
//!
//! A managed Docker plugin sees `/proc/sys` read-only; its config bind-mounts the host's
//! `/proc/sys` elsewhere (the plugin shares the host's network namespace, so the `net`
//! settings there are the host's) and points `KURYR_PROC_SYS` at it.
use std::path::PathBuf;
use std::sync::OnceLock;

/// The environment variable naming the `/proc/sys` to write.
pub const ENV: &str = "KURYR_PROC_SYS";

/// `key` (`net/ipv4/ip_forward`) under the `/proc/sys` in use.
pub fn path(key: &str) -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::var_os(ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/proc/sys"))
    })
    .join(key)
}

/// Writes `value` to `key`, the error naming the file.
pub fn write(key: &str, value: &str) -> std::io::Result<()> {
    let p = path(key);
    std::fs::write(&p, value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("write {}: {e}", p.display())))
}
