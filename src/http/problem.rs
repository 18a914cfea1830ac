//! API errors and their one mapping to HTTP: status, `application/problem+json` body (RFC 9457),
//! and headers.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::directory::{DirectoryError, UserRef};
use crate::metrics as m;
use crate::otp::CodeFormatError;
use crate::phone::PhoneError;
use crate::pumping::DestinationRefused;
use crate::ratelimit::Refused;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a request can fail with. Each variant is documented in `docs/openapi.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization: Bearer` header, or an unknown key.
    #[error("a valid API key is required: send Authorization: Bearer <key>")]
    Unauthorized,
    /// A known key without the route's scope, or outside its tenants.
    #[error("{0}")]
    Forbidden(String),
    /// A directory operation failed; `DirectoryError` says how.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// A query parameter or path segment the route cannot use.
    #[error("{0}")]
    BadRequest(String),
    #[error("no such route")]
    NotFound,
    /// `GET /v1/otp/{id}` for an id never issued, or forgotten (delivery.ttl_seconds).
    #[error("no code with that id (or its record has expired)")]
    UnknownId,
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive in time (server.body_read_timeout_seconds).
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// The body is not the JSON this route expects; the text says where.
    #[error("{0}")]
    BadJson(String),
    #[error(transparent)]
    InvalidPhone(#[from] PhoneError),
    #[error(transparent)]
    InvalidCode(#[from] CodeFormatError),
    /// A number the destination rules refuse (`[destinations]`).
    #[error(transparent)]
    Destination(#[from] crate::pumping::DestinationRefused),
    /// The conversion breaker blocks the number's prefix (`[pumping.breaker]`).
    #[error("SMS to this destination are paused; retry after {} s", crate::ratelimit::retry_after_secs(*.0))]
    DestinationBlocked(std::time::Duration),
    /// A valid number that no configured route serves (`[[routes]]` without a catch-all).
    #[error("no route sends SMS to this number")]
    NoRoute,
    #[error("locale must be a language tag such as nl or pt-BR")]
    InvalidLocale,
    #[error("from must be +digits (E.164), a short code, or up to 11 letters and digits")]
    InvalidSender,
    /// A valid `from` that is not among the client's `senders`.
    #[error("from is not one of this client's senders ([[api.clients]] senders)")]
    SenderNotAllowed,
    #[error(transparent)]
    InvalidCallback(#[from] crate::webhooks::CallbackError),
    /// The SMS text cannot be sent (empty, or more parts than concatenation allows).
    #[error("{0}")]
    InvalidText(String),
    #[error("rate limit {} exceeded; retry after {} s", .0.limit.as_str(), .0.retry_after_secs())]
    RateLimited(Refused),
    /// The SMS queue is full, or no code can be stored right now.
    #[error("{0}")]
    Unavailable(&'static str),
    /// Not our caller's fault; details are logged, not returned.
    #[error("internal error")]
    Internal,
}

#[derive(Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'static str>,
    /// For `phone-number-not-unique`: who holds the number (an admin may see that).
    #[serde(skip_serializing_if = "Option::is_none")]
    holder: Option<UserRef>,
}

impl ApiError {
    /// A refusal by a rate limit, counted in `otpgate_rate_limited_total` by the limit's name.
    pub fn rate_limited(refused: Refused) -> Self {
        metrics::counter!(m::RATE_LIMITED_TOTAL, m::LABEL_LIMIT => refused.limit.as_str())
            .increment(1);
        ApiError::RateLimited(refused)
    }

    /// Status, stable problem slug and title.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
            ),
            ApiError::Directory(err) => match err {
                DirectoryError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
                DirectoryError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
                DirectoryError::NumberNotUnique { .. } => (
                    StatusCode::CONFLICT,
                    "phone-number-not-unique",
                    "Phone number not unique",
                ),
                DirectoryError::NotSupported => {
                    (StatusCode::CONFLICT, "not-supported", "Not supported")
                }
                DirectoryError::NotAllowedByPolicy => (
                    StatusCode::CONFLICT,
                    "not-allowed-by-policy",
                    "Not allowed by policy",
                ),
                DirectoryError::MobileRequired => (
                    StatusCode::CONFLICT,
                    "mobile-required",
                    "A mobile number is required first",
                ),
                DirectoryError::Invalid(_) => (
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "Invalid request",
                ),
                DirectoryError::Storage(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                ),
            },
            ApiError::NotFound | ApiError::UnknownId => {
                (StatusCode::NOT_FOUND, "not-found", "Not found")
            }
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            ApiError::BodyTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            ApiError::BadJson(_) => (StatusCode::BAD_REQUEST, "invalid-json", "Invalid JSON body"),
            ApiError::InvalidPhone(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-phone",
                "Invalid phone number",
            ),
            ApiError::InvalidCallback(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-callback",
                "Invalid callback URL",
            ),
            ApiError::SenderNotAllowed => (
                StatusCode::FORBIDDEN,
                "sender-not-allowed",
                "Sender not allowed",
            ),
            ApiError::InvalidSender => {
                (StatusCode::BAD_REQUEST, "invalid-sender", "Invalid sender")
            }
            ApiError::InvalidText(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-text",
                "Invalid message text",
            ),
            ApiError::Destination(refused) => match refused {
                DestinationRefused::NotPermitted => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "destination-not-permitted",
                    "Destination not permitted",
                ),
                DestinationRefused::Unassigned => (
                    StatusCode::BAD_REQUEST,
                    "invalid-phone",
                    "Invalid phone number",
                ),
                DestinationRefused::LineType(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "line-type-not-permitted",
                    "Line type not permitted",
                ),
            },
            ApiError::DestinationBlocked(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "destination-blocked",
                "Destination blocked",
            ),
            ApiError::NoRoute => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "no-route",
                "No route to this number",
            ),
            ApiError::InvalidLocale => {
                (StatusCode::BAD_REQUEST, "invalid-locale", "Invalid locale")
            }
            ApiError::InvalidCode(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-code",
                "Invalid code format",
            ),
            ApiError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

impl From<crate::pumping::PumpingRefused> for ApiError {
    fn from(refused: crate::pumping::PumpingRefused) -> Self {
        use crate::pumping::PumpingRefused as P;
        match refused {
            P::Limited(refused) => ApiError::rate_limited(refused),
            P::Blocked(remaining) => ApiError::DestinationBlocked(remaining),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.classify();
        let limit = match &self {
            ApiError::RateLimited(refused) => Some(refused.limit.as_str()),
            _ => None,
        };
        let holder = match &self {
            ApiError::Directory(DirectoryError::NumberNotUnique { holder }) => Some(holder.clone()),
            _ => None,
        };
        let detail = match &self {
            // Storage details are for the log, not the caller.
            ApiError::Directory(err @ DirectoryError::Storage(_)) => {
                tracing::error!(%err, "directory request failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            kind: format!("urn:otpgate:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail,
            limit,
            holder,
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            ApiError::RateLimited(refused) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(refused.retry_after_secs()),
                );
            }
            ApiError::DestinationBlocked(remaining) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::ratelimit::retry_after_secs(*remaining)),
                );
            }
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
