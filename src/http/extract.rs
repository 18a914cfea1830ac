//! Request extraction: bearer-key authentication and a JSON body with precise errors
//! (415 wrong type, 413 too large, 400 malformed).

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::problem::ApiError;
use crate::config::Secret;

/// The accepted API keys, kept as SHA-256 digests and compared in constant time.
pub struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    pub fn new(keys: &[Secret]) -> Self {
        Self(
            keys.iter()
                .map(|k| Sha256::digest(k.expose().as_bytes()).into())
                .collect(),
        )
    }

    /// Whether `presented` is one of the keys. Every key is compared, so timing does not say which
    /// one (or how much of one) matched.
    pub fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&digest)
            })
            .into()
    }
}

/// Middleware for `/v1/otp`: refuses requests without a known OTP key.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(&state.api_keys, request, next).await
}

/// Middleware for `/v1/sms`: refuses requests without a known SMS key.
pub async fn require_sms_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(&state.sms_keys, request, next).await
}

async fn require(keys: &ApiKeys, request: Request, next: Next) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(key) if keys.accepts(key) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
    }
}

/// A JSON request body, read up to the configured size.
pub struct ApiJson<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.max_body_bytes;
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        if !is_json(content_type) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        // A client that trickles its body would otherwise hold the connection and this task.
        let timeout = state.body_read_timeout;
        let bytes = tokio::time::timeout(timeout, read_limited(request.into_body(), limit))
            .await
            .map_err(|_| ApiError::BodyTimeout(timeout.as_secs()))??;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|err| ApiError::BadJson(format!("invalid JSON body: {err}")))
    }
}

/// Reads a body, giving up as soon as it passes `limit` (a chunked body has no Content-Length).
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|err| ApiError::BadJson(format!("could not read the body: {err}")))?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys = ApiKeys::new(&[
            Secret::from("first-key-1".to_owned()),
            Secret::from("second-key-2".to_owned()),
        ]);
        assert!(keys.accepts("first-key-1"));
        assert!(keys.accepts("second-key-2"));
        assert!(!keys.accepts("first-key-"));
        assert!(!keys.accepts(""));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}
