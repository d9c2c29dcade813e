//! Errors of the OVSDB client. Each says what was being done and to which database or table.
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid OVSDB remote {remote:?}: {reason} (expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT)")]
    BadRemote { remote: String, reason: String },

    #[error("connect to {remote}: {source}")]
    Connect {
        remote: String,
        #[source]
        source: std::io::Error,
    },

    #[error("connection to {remote}: {source}")]
    Io {
        remote: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{remote} closed the connection")]
    Closed { remote: String },

    #[error("TLS with {remote}: {message}")]
    Tls { remote: String, message: String },

    #[error("database {database} is not reachable (remotes: {remotes}): {last_error}")]
    NotConnected {
        database: String,
        remotes: String,
        last_error: String,
    },

    #[error("connection to {database} at {remote} lost while waiting for the reply to {method}; the request may or may not have taken effect")]
    Disconnected {
        database: String,
        remote: String,
        method: String,
    },

    #[error("{what}: no answer within {seconds:.1} s")]
    Timeout { what: String, seconds: f64 },

    #[error("malformed message from the server: {0}")]
    Protocol(String),

    #[error("{method} failed: {error}")]
    Rpc { method: String, error: Value },

    #[error(
        "operation {index} ({op}{}) failed: {error}{}",
        on_table(table),
        details_suffix(details)
    )]
    Operation {
        index: usize,
        op: String,
        table: String,
        error: String,
        details: Option<String>,
    },

    #[error(
        "transaction on {database} failed to commit: {error}{}",
        details_suffix(details)
    )]
    Commit {
        database: String,
        error: String,
        details: Option<String>,
    },

    #[error("schema of {database}: {message}")]
    Schema { database: String, message: String },

    #[error("the client is shut down")]
    Shutdown,
}

fn on_table(table: &str) -> String {
    if table.is_empty() {
        String::new()
    } else {
        format!(" on table {table}")
    }
}

fn details_suffix(details: &Option<String>) -> String {
    match details {
        Some(d) if !d.is_empty() => format!(" ({d})"),
        _ => String::new(),
    }
}

impl Error {
    /// The server reported a `wait` or `assert` condition that did not hold, or a constraint
    /// violation: the transaction did nothing and may be retried after re-reading the data.
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Operation { error, .. } => {
                error == "timed out" || error == "not owner" || error == "constraint violation"
            }
            // A unique index the schema declares (a Logical_Switch_Port's name) is checked at commit.
            Error::Commit { error, .. } => error == "constraint violation",
            _ => false,
        }
    }

    /// The outcome of the request is unknown or it was never sent because the connection is down.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Error::Disconnected { .. }
                | Error::NotConnected { .. }
                | Error::Connect { .. }
                | Error::Tls { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
