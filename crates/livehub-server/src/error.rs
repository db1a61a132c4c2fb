//! The HTTP edge's error: a documented code, a status, and a JSON body that hides internals.

use axum::http::header::CONTENT_TYPE;
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
    /// Through the command layer's error, so that a broker failure is logged and not shown.
    fn from(e: livehub_core::Error) -> Self {
        crate::engine::ClientError::from(e).into()
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
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: say which scheme is expected, and whether the token was the problem.
            let value = if self.code == "unauthorized" && self.message.contains("missing credentials") {
                "Bearer"
            } else {
                "Bearer error=\"invalid_token\""
            };
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static(value));
        }
        response
    }
}

/// A router layer: turns the framework's own plain-text `413` for a body over
/// `limits.max_body_size` into the documented `too_large` JSON error. Answers that are JSON
/// already (a publication's data over `max_data_size`) pass unchanged.
pub(crate) async fn json_body_limit(response: Response, max_body_size: usize) -> Response {
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body is larger than limits.max_body_size ({max_body_size} bytes)"),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(error: ApiError, name: &str) -> Option<String> {
        error.into_response().headers().get(name).map(|v| v.to_str().expect("ascii").to_owned())
    }

    #[test]
    fn refusals_say_how_to_authenticate_and_when_to_retry() {
        let missing = ApiError::from(livehub_auth::AuthError::Unauthorized("missing credentials"));
        assert_eq!(header(missing, "www-authenticate").as_deref(), Some("Bearer"));
        let expired = ApiError::from(livehub_auth::AuthError::TokenExpired);
        assert_eq!(header(expired, "www-authenticate").as_deref(), Some("Bearer error=\"invalid_token\""));
        let limited = ApiError::from(livehub_auth::AuthError::RateLimited);
        assert_eq!(header(limited, "retry-after").as_deref(), Some("1"));
        assert_eq!(header(ApiError::bad_request("x"), "www-authenticate"), None);
    }
}
