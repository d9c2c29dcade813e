//! Which pool ports this host handed out and no endpoint has claimed or given back yet, in a
//! file that outlives a killed daemon (`/run`: gone with a reboot, as are the containers).
//!
//! A port taken by RequestAddress keeps its free name until CreateEndpoint claims it, so a
//! restart in between would find it free and could hand it out again while Docker still
//! retries the first container's CreateEndpoint (or ReleaseAddress) with it. A start skips the
//! ports this file has as taken; the first container's claim or release settles them.
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// The file is rewritten with only the pending ports when it grows past this.
const COMPACT_AT: u64 = 1 << 20;

pub(crate) struct Journal {
    path: PathBuf,
    pending: Mutex<HashSet<String>>,
}

impl Journal {
    /// Opens (and compacts) the journal at `path`; the ports it has as taken and pending.
    pub(crate) fn open(path: PathBuf) -> std::io::Result<Journal> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let pending = parse(&text);
        let j = Journal {
            path,
            pending: Mutex::new(pending),
        };
        j.compact()?;
        Ok(j)
    }

    /// The ports taken before this start and still pending.
    pub(crate) fn pending(&self) -> HashSet<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `port` was handed out.
    pub(crate) fn taken(&self, port: &str) {
        if self.lock().insert(port.to_string()) {
            self.append(&format!("take {port}\n"));
        }
    }

    /// `port` was claimed by an endpoint, given back or deleted.
    pub(crate) fn settled(&self, port: &str) {
        if self.lock().remove(port) {
            self.append(&format!("done {port}\n"));
        }
    }

    fn append(&self, line: &str) {
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                f.write_all(line.as_bytes())?;
                f.metadata()
            });
        match r {
            Ok(m) if m.len() > COMPACT_AT => {
                if let Err(e) = self.compact() {
                    tracing::warn!(path = %self.path.display(), error = %e, "could not compact the pool journal");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "could not write the pool journal: a restart may find a port handed out as free")
            }
        }
    }

    /// Rewrites the file with the pending ports only (a new file renamed over the old).
    fn compact(&self) -> std::io::Result<()> {
        let text: String = self.lock().iter().map(|p| format!("take {p}\n")).collect();
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// The ports taken and not done, from the journal's lines (others are ignored).
fn parse(text: &str) -> HashSet<String> {
    let mut pending = HashSet::new();
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("take", p)) => {
                pending.insert(p.trim().to_string());
            }
            Some(("done", p)) => {
                pending.remove(p.trim());
            }
            _ => {}
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_take_stays_pending_until_it_is_settled_across_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("pool");
        let j = Journal::open(path.clone()).expect("open");
        j.taken("a");
        j.taken("b");
        j.settled("a");
        drop(j);
        let j = Journal::open(path.clone()).expect("reopen");
        assert_eq!(j.pending(), HashSet::from(["b".to_string()]));
        j.settled("b");
        drop(j);
        assert!(Journal::open(path).expect("reopen").pending().is_empty());
    }

    #[test]
    fn unreadable_lines_are_ignored() {
        assert_eq!(
            parse("take x\ngarbage\ndone y\ntake z\ndone x\n"),
            HashSet::from(["z".to_string()])
        );
    }
}
