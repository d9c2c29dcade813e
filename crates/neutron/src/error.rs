//! Errors of the Neutron and Keystone clients; each names the object and what was being done.

/// A failed Neutron or Keystone request.
#[derive(Debug, thiserror::Error)]
pub enum NeutronError {
    /// Neutron answered with an error status.
    #[error("{what}: Neutron answered {status}: {message}")]
    Http {
        what: String,
        status: u16,
        message: String,
    },
    /// Neutron could not be reached or the connection broke.
    #[error("{what}: cannot reach Neutron at {url}: {}. Check that neutron-server runs there, or set [neutron] endpoint / the Keystone catalog's network endpoint", chain(.source))]
    Transport {
        what: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// Neutron answered something that is not what its API documents.
    #[error("{what}: unexpected answer from Neutron: {message}")]
    Decode { what: String, message: String },
    /// Keystone refused the credentials or could not be reached.
    #[error("Keystone at {auth_url}: {message}")]
    Auth { auth_url: String, message: String },
    /// The configuration cannot work (no endpoint, unknown auth type, ...).
    #[error("{0}")]
    Config(String),
}

impl NeutronError {
    pub fn status(&self) -> Option<u16> {
        match self {
            NeutronError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }
    /// The `If-Match` revision no longer matches: someone else changed the object.
    pub fn is_precondition_failed(&self) -> bool {
        self.status() == Some(412)
    }
    /// Worth trying again later (Neutron down or overloaded), as opposed to a refusal.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            NeutronError::Transport { .. } | NeutronError::Auth { .. }
        ) || matches!(self.status(), Some(500..=599))
    }
}

/// An error and its causes on one line (`reqwest`'s own message leaves out why a request
/// failed: connection refused, timeout, ...).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}
