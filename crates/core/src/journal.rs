//! What this host handed out to Docker and Docker has not settled yet (an endpoint claimed it
//! or it was given back), in a file that outlives a killed daemon (`/run`: gone with a
//! reboot, as are the containers). Each entry is one line of text without a newline.
//!
//! The Neutron mode's port pools note the ports RequestAddress took (a restart must not find
//! them free while Docker still retries CreateEndpoint with one); the OVN mode notes the
//! addresses it reserved (a restart releases those Docker never got).
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// The file is rewritten with only the pending ports when it grows past this.
const COMPACT_AT: u64 = 1 << 20;

pub struct Journal {
    path: PathBuf,
    /// What the file holds, for the warnings ("pool journal").
    what: &'static str,
    pending: Mutex<HashSet<String>>,
}

impl Journal {
    /// Opens (and compacts) the journal at `path`; the entries it has as taken and pending.
    pub fn open(path: PathBuf, what: &'static str) -> std::io::Result<Journal> {
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
            what,
            pending: Mutex::new(pending),
        };
        j.compact(&j.lock())?;
        Ok(j)
    }

    /// [`Journal::open`] at `path` when there is one; a journal that cannot be kept is
    /// logged with what that costs (`without`) and taken as none.
    pub fn open_or_warn(
        path: Option<PathBuf>,
        what: &'static str,
        without: &str,
    ) -> Option<Journal> {
        let path = path?;
        Journal::open(path.clone(), what)
            .map_err(|e| {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep the {what}: {without}");
            })
            .ok()
    }

    /// The entries taken and still pending (those of the previous run, right after `open`).
    pub fn pending(&self) -> HashSet<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `entry` was handed out.
    pub fn taken(&self, entry: &str) {
        let mut pending = self.lock();
        if pending.insert(entry.to_string()) {
            self.append(&pending, &format!("take {entry}\n"));
        }
    }

    /// `entry` was claimed by an endpoint, given back or deleted. The file goes once nothing
    /// is pending, so a daemon that settled everything leaves none behind.
    pub fn settled(&self, entry: &str) {
        let mut pending = self.lock();
        if !pending.remove(entry) {
            return;
        }
        if pending.is_empty() {
            if let Err(e) = self.compact(&pending) {
                self.warn(&e);
            }
        } else {
            self.append(&pending, &format!("done {entry}\n"));
        }
    }

    /// Called with the lock held, so that a compaction or removal never loses a line.
    fn append(&self, pending: &HashSet<String>, line: &str) {
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                f.write_all(line.as_bytes())?;
                f.metadata()
            });
        let r = match r {
            Ok(m) if m.len() > COMPACT_AT => self.compact(pending),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            self.warn(&e);
        }
    }

    fn warn(&self, e: &std::io::Error) {
        tracing::warn!(path = %self.path.display(), error = %e, "could not write the {}: a restart may not know what was handed out", self.what);
    }

    /// Rewrites the file with the pending entries only (a new file renamed over the old), or
    /// removes it when nothing is pending.
    fn compact(&self, pending: &HashSet<String>) -> std::io::Result<()> {
        if pending.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let text: String = pending.iter().map(|p| format!("take {p}\n")).collect();
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// The entries taken and not done, from the journal's lines (others are ignored).
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
        let j = Journal::open(path.clone(), "test journal").expect("open");
        j.taken("a");
        j.taken("b");
        j.settled("a");
        drop(j);
        let j = Journal::open(path.clone(), "test journal").expect("reopen");
        assert_eq!(j.pending(), HashSet::from(["b".to_string()]));
        j.settled("b");
        assert!(!path.exists(), "nothing pending: no file");
        drop(j);
        assert!(Journal::open(path.clone(), "test journal")
            .expect("reopen")
            .pending()
            .is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn unreadable_lines_are_ignored() {
        assert_eq!(
            parse("take x\ngarbage\ndone y\ntake z\ndone x\n"),
            HashSet::from(["z".to_string()])
        );
    }
}
