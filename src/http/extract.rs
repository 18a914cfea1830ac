//! Request extraction: bearer-key authentication and a JSON body with precise errors
//! (415 wrong type, 413 too large, 400 malformed).

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::AppState;
use super::client_ip::Origin;
use super::problem::ApiError;
use crate::config::clients::{ApiClient, Scope, key_sha256};
use crate::ratelimit::Sender;

/// The API clients, found by the SHA-256 of the presented key in constant time.
pub struct ApiClients(Vec<Arc<ApiClient>>);

impl ApiClients {
    pub fn new(clients: &[ApiClient]) -> Self {
        Self(clients.iter().cloned().map(Arc::new).collect())
    }

    /// The client whose key is `presented`. Every client's digest is compared, so timing does
    /// not say which one (or how much of one) matched.
    pub fn find(&self, presented: &str) -> Option<&Arc<ApiClient>> {
        let digest = key_sha256(presented);
        let mut found = None;
        for client in &self.0 {
            let hit: bool = client.key_sha256.ct_eq(&digest).into();
            if hit {
                found = Some(client);
            }
        }
        found
    }
}

/// The authenticated client of a request, put there by [`authorize`].
#[derive(Clone)]
pub struct Caller(pub Arc<ApiClient>);

impl Caller {
    /// Refuses a tenant outside the client's `tenants`.
    pub fn tenant(&self, tid: &str) -> Result<(), ApiError> {
        if self.0.may_touch(tid) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this key may not touch tenant {tid}"
            )))
        }
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

/// Where a request comes from: the connection's address, or the end user's through trusted
/// proxies (`client_ip`); `None` when not served over TCP.
pub struct Peer(pub Option<Origin>);

impl Peer {
    /// The client's address, for the sign-in log.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.0.map(|origin| origin.ip)
    }

    /// Who sends, for the send limits: the caller and, unless the request is a trusted
    /// proxy's own, its source address.
    pub fn sender<'a>(&self, caller: &'a Caller) -> Sender<'a> {
        Sender {
            client: caller.name(),
            ip: self
                .0
                .filter(|origin| !origin.internal)
                .map(|origin| origin.ip),
        }
    }
}

impl axum::extract::FromRequestParts<AppState> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| state.client_ip.resolve(info.0.ip(), &parts.headers)),
        ))
    }
}

/// What a group of routes needs of the key.
#[derive(Clone, Copy)]
pub enum Need {
    Scope(Scope),
    /// `directory:read` to GET, `directory:write` for everything else.
    Directory,
}

/// Middleware: a known key (else 401) with the scope the route needs (else 403); the client
/// goes into the request for the handler.
pub async fn authorize(
    State((state, need)): State<(AppState, Need)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let client = presented
        .and_then(|key| state.clients.find(key))
        .ok_or(ApiError::Unauthorized)?;
    let scope = match need {
        Need::Scope(scope) => scope,
        Need::Directory if request.method() == axum::http::Method::GET => Scope::DirectoryRead,
        Need::Directory => Scope::DirectoryWrite,
    };
    if !client.scopes.contains(scope) {
        return Err(ApiError::Forbidden(format!(
            "this key lacks the scope {}",
            scope.as_str()
        )));
    }
    request.extensions_mut().insert(Caller(client.clone()));
    Ok(next.run(request).await)
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
        let client = |name: &str, key: &str| ApiClient {
            name: name.to_owned(),
            key_sha256: key_sha256(key),
            scopes: crate::config::clients::Scopes::of(&[Scope::OtpSend]),
            tenants: None,
            webhook_secret: None,
            senders: Vec::new(),
            sends_per_second: None,
            key_in_clear: false,
        };
        let clients = ApiClients::new(&[client("a", "first-key-1"), client("b", "second-key-2")]);
        assert_eq!(
            clients.find("first-key-1").map(|c| c.name.as_str()),
            Some("a")
        );
        assert_eq!(
            clients.find("second-key-2").map(|c| c.name.as_str()),
            Some("b")
        );
        assert!(clients.find("first-key-").is_none());
        assert!(clients.find("").is_none());
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
