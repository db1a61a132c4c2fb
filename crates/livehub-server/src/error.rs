//! The HTTP edge's error: a documented code, a status, and a JSON body that hides internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::cursor::BadCursor;

/// An error answered to an HTTP request as `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code from `docs/protocol.md`.
    pub code: &'static str,
    /// A message for people.
    pub message: String,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// `404 transport_disabled`: the operator switched this transport off.
    pub fn disabled(transport: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "transport_disabled",
            format!("{transport} is disabled on this server"),
        )
    }

    /// `503 shutting_down`.
    pub fn shutting_down() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down")
    }
}

impl From<livehub_core::Error> for ApiError {
    fn from(e: livehub_core::Error) -> Self {
        let status = match e {
            livehub_core::Error::Broker(_) => StatusCode::SERVICE_UNAVAILABLE,
            livehub_core::Error::ReadOnlyChannel(_) => StatusCode::FORBIDDEN,
            livehub_core::Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %e, "broker error");
        }
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<BadCursor> for ApiError {
    fn from(e: BadCursor) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_cursor", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // Limits refill continuously; a second is a fair first back-off.
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
