//! Errors of the OVN backend; each names the object and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum OvnError {
    /// Bad input from the user or Docker.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The object or address is taken.
    #[error("{0}")]
    Conflict(String),
    /// The pool has no free address left.
    #[error("{0}")]
    Exhausted(String),
    /// Northbound failed or is unreachable.
    #[error("{context}: {source}")]
    Db {
        context: String,
        #[source]
        source: Box<kuryr_ovsdb::Error>,
    },
}

impl OvnError {
    pub fn db(context: impl Into<String>) -> impl FnOnce(kuryr_ovsdb::Error) -> OvnError {
        let context = context.into();
        move |source| OvnError::Db {
            context,
            source: Box::new(source),
        }
    }
}

pub type Result<T, E = OvnError> = std::result::Result<T, E>;
