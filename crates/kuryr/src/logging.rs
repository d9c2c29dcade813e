//! Where `kuryr daemon` logs: stderr (without timestamps or colours under systemd, where
//! journald adds its own), or `[DEFAULT] log_file`, appended to and reopened on SIGHUP so
//! logrotate can move it; as text, or as one JSON object per line (`use_json`,
//! `--log-format json`).
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// The log file, shared by every event; [`LogFile::reopen`] swaps in a fresh handle.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(open(path)?)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again (logrotate moved the old file away) and writes there from now on.
    pub fn reopen(&self) -> io::Result<()> {
        let fresh = open(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

/// One event's write: the formatter hands over a whole line at once.
pub struct LogWriter(Arc<Mutex<File>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.file.clone())
    }
}

/// Installs the global subscriber; returns the log file when there is one, for SIGHUP.
pub fn init(filter: EnvFilter, json: bool, file: Option<&Path>) -> io::Result<Option<LogFile>> {
    let base = tracing_subscriber::fmt::layer();
    let (layer, log_file) = match file {
        Some(path) => {
            let lf = LogFile::open(path)?;
            let layer = base.with_writer(lf.clone()).with_ansi(false);
            let layer = if json {
                layer.json().boxed()
            } else {
                layer.boxed()
            };
            (layer, Some(lf))
        }
        None => {
            // Colours only for a person at a terminal: not in journald, dockerd's log (a
            // managed plugin's stderr), a pipe or a file.
            let ansi = io::IsTerminal::is_terminal(&io::stderr())
                && std::env::var_os("NO_COLOR").is_none();
            let layer = base.with_writer(io::stderr).with_ansi(ansi);
            let journald = std::env::var_os("JOURNAL_STREAM").is_some();
            let layer = match (json, journald) {
                (true, _) => layer.json().boxed(),
                (false, true) => layer.without_time().with_ansi(false).boxed(),
                (false, false) => layer.boxed(),
            };
            (layer, None)
        }
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .init();
    Ok(log_file)
}
