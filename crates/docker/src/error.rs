//! Requests refused before a driver sees them.

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
}
