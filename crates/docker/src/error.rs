//! The two error types of the crate: requests refused before the driver sees them, and the
//! driver's own failures.

use std::error::Error as StdError;

/// Longest bad value quoted in an error message; longer ones are cut.
const MAX_QUOTED: usize = 128;

/// A request Docker sent that cannot be turned into a validated request.
///
/// Every variant names the call (`CreateNetwork`) and, where there is one, the field and the bad
/// value, so the message Docker prints points at the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not a JSON object.
    #[error("{call}: malformed JSON body: {detail}")]
    Malformed {
        /// Method name, e.g. `CreateNetwork`.
        call: &'static str,
        /// The JSON parser's message.
        detail: String,
    },
    /// A field holds a JSON value of the wrong type.
    #[error("{call}: {field}: {detail}")]
    WrongType {
        /// Method name.
        call: &'static str,
        /// Path of the field, e.g. `IPv4Data[0].Pool`.
        field: String,
        /// The JSON parser's message, which quotes the value.
        detail: String,
    },
    /// A field has the right type but a value Docker would never send (bad id, bad CIDR, ...).
    #[error("{call}: {field} {value:?}: {reason}")]
    Invalid {
        /// Method name.
        call: &'static str,
        /// Field name as Docker spells it, e.g. `Options[com.docker.network.endpoint.macaddress]`.
        field: String,
        /// The offending value (cut to a readable length).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl RequestError {
    /// Builds an [`RequestError::Invalid`], quoting at most a readable prefix of `value`.
    pub fn invalid(
        call: &'static str,
        field: impl Into<String>,
        value: impl AsRef<str>,
        reason: impl Into<String>,
    ) -> Self {
        let value = value.as_ref();
        let value = match value.char_indices().nth(MAX_QUOTED) {
            Some((cut, _)) => format!("{}...", &value[..cut]),
            None => value.to_owned(),
        };
        RequestError::Invalid {
            call,
            field: field.into(),
            value,
            reason: reason.into(),
        }
    }
}

/// Boxed error a driver wraps in [`PluginError::Backend`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a driver refused or failed a call; Docker receives it as `{"Err": "<message>"}`.
///
/// The message is the `Display` of the error followed by its `source()` chain, so a context
/// such as "create logical switch for network 3f2a..." should name the object.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The request is understood but cannot be honoured as asked (bad option value, unsupported
    /// combination).
    #[error("{0}")]
    InvalidArgument(String),
    /// The network, endpoint, pool or address named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with existing state (address in use, pool exhausted, id reused).
    #[error("{0}")]
    Conflict(String),
    /// A dependency (control plane, OVS, the kernel) failed while doing `context`.
    #[error("{context}")]
    Backend {
        /// What was being done, to which object.
        context: String,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
    /// The driver does not implement the call; answered with HTTP 404, which Docker takes as
    /// "not supported" for ProgramExternalConnectivity and RevokeExternalConnectivity.
    #[error("not implemented")]
    NotImplemented,
}

impl PluginError {
    /// Shorthand for [`PluginError::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        PluginError::InvalidArgument(msg.into())
    }

    /// Shorthand for [`PluginError::NotFound`].
    pub fn not_found(msg: impl Into<String>) -> Self {
        PluginError::NotFound(msg.into())
    }

    /// Shorthand for [`PluginError::Conflict`].
    pub fn conflict(msg: impl Into<String>) -> Self {
        PluginError::Conflict(msg.into())
    }

    /// Wraps a dependency's error with what was being done.
    pub fn backend(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PluginError::Backend {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Renders an error and its `source()` chain as `outer: inner: innermost`.
pub(crate) fn chain_message(err: &(dyn StdError + 'static)) -> String {
    let mut msg = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // Some errors repeat their source in their own message; do not say it twice.
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        next = cause.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_cuts_long_values_on_a_char_boundary() {
        let long = "é".repeat(300);
        let RequestError::Invalid { value, .. } = RequestError::invalid("Join", "F", &long, "bad")
        else {
            panic!("wrong variant");
        };
        assert_eq!(value.chars().count(), MAX_QUOTED + 3);
        assert!(value.ends_with("..."));
    }

    #[test]
    fn invalid_message_names_call_field_and_value() {
        let err = RequestError::invalid("CreateNetwork", "NetworkID", "xyz", "not a Docker id");
        assert_eq!(
            err.to_string(),
            r#"CreateNetwork: NetworkID "xyz": not a Docker id"#
        );
    }

    #[test]
    fn backend_error_message_carries_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = PluginError::backend("create logical switch for network 3f2a", io);
        assert_eq!(
            chain_message(&err),
            "create logical switch for network 3f2a: connection refused"
        );
    }

    #[test]
    fn chain_message_does_not_repeat_a_source_already_in_the_message() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: inner")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner")]
        struct Inner;
        assert_eq!(chain_message(&Outer(Inner)), "outer: inner");
    }
}
