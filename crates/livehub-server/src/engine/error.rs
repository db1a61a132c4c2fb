//! The one error a client sees from the command layer: a stable code and a message that never
//! carries internal detail.

use axum::http::StatusCode;
use livehub_auth::AuthError;
use livehub_core::ClientId;

use crate::error::ApiError;

/// Why a command failed, as the client sees it. [`ClientError::code`] is the documented code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The message is not JSON or MessagePack at all.
    #[error("{0}")]
    InvalidMessage(String),
    /// Well-formed, but a field is missing or has the wrong type.
    #[error("{0}")]
    BadRequest(String),
    /// A required field is missing.
    #[error("missing field \"{0}\"")]
    Missing(&'static str),
    /// `action` names no command.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    /// A history position from another epoch.
    #[error("the channel's history is now in epoch {0}; positions from another epoch cannot be continued")]
    EpochMismatch(String),
    /// A `refresh` token for another subject, or on a connection not opened with a token.
    #[error("a refreshed token must name the same subject as the token the connection was opened with")]
    SubjectChanged,
    /// Access control refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The channel model refused.
    #[error(transparent)]
    Core(#[from] livehub_core::Error),
}

/// What a client is told in place of a broker failure's own text, which may name hosts, files or
/// SQL: the detail goes to the log with the connection's id.
const UNAVAILABLE: &str = "the broker is unavailable; retry later";

impl ClientError {
    /// The stable code from `docs/protocol.md`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::InvalidMessage(_) => "invalid_message",
            Self::BadRequest(_) | Self::Missing(_) => "bad_request",
            Self::UnknownAction(_) => "unknown_action",
            Self::EpochMismatch(_) => "epoch_mismatch",
            Self::SubjectChanged => "forbidden",
            Self::Auth(e) => e.code(),
            Self::Core(e) => e.code(),
        }
    }

    /// Whether the server failed, rather than the request.
    pub(crate) fn is_internal(&self) -> bool {
        matches!(self, Self::Core(livehub_core::Error::Broker(_)))
    }

    /// The message for the client: this error's text, except for internal failures, which are
    /// logged (with `client`, when there is a connection) and answered with a fixed sentence.
    pub(crate) fn client_message(&self, client: Option<ClientId>) -> String {
        if self.is_internal() {
            match client {
                Some(client) => tracing::error!(%client, error = %self, "broker error"),
                None => tracing::error!(error = %self, "broker error"),
            }
            return UNAVAILABLE.to_owned();
        }
        self.to_string()
    }

    /// The HTTP status of this error, for the REST API.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Auth(e) => StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN),
            Self::EpochMismatch(_) => StatusCode::CONFLICT,
            Self::Core(livehub_core::Error::Broker(_) | livehub_core::Error::StoreFull(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Core(livehub_core::Error::ReadOnlyChannel(_)) => StatusCode::FORBIDDEN,
            Self::Core(livehub_core::Error::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        if let ClientError::Auth(auth) = e {
            return ApiError::from(auth);
        }
        ApiError::new(e.status(), e.code(), e.client_message(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_is_a_503_the_client_may_retry() {
        let e = ClientError::Core(livehub_core::Error::StoreFull("100000 publications are waiting".into()));
        assert_eq!(e.code(), "store_full");
        assert!(!e.is_internal(), "nothing failed: the client is told why");
        let api = ApiError::from(e);
        assert_eq!((api.status, api.code), (StatusCode::SERVICE_UNAVAILABLE, "store_full"));
    }

    #[test]
    fn broker_detail_never_reaches_the_client() {
        let e = ClientError::Core(livehub_core::Error::Broker("connect to 10.0.0.7:6379: refused".into()));
        assert_eq!(e.code(), "unavailable");
        let shown = e.client_message(None);
        assert!(!shown.contains("10.0.0.7"), "{shown}");
        let api = ApiError::from(e);
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!api.message.contains("10.0.0.7"), "{}", api.message);
    }

    #[test]
    fn request_errors_keep_their_text() {
        let e = ClientError::Missing("channel");
        assert_eq!((e.code(), e.client_message(None).as_str()), ("bad_request", "missing field \"channel\""));
    }
}
