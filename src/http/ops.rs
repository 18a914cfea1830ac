//! Operator routes: liveness, readiness, Prometheus metrics, and the fallbacks.

use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::problem::ApiError;
use crate::metrics as m;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready only while some carrier can send (a session bound, its breaker not open): a load
/// balancer then sends traffic only to daemons that can deliver.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.carriers.any_available() {
        Ok(Json(
            json!({ "status": "ready", "messages_in_progress": state.deliveries.in_progress() }),
        ))
    } else {
        Err(ApiError::Unavailable(
            "no carrier can send: none has a session bound, or every one's breaker is open",
        ))
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Counts and times every request by matched route (never by raw path: unbounded labels).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(m::HTTP_REQUESTS_TOTAL, m::LABEL_ROUTE => route.clone(), m::LABEL_STATUS => status).increment(1);
    metrics::histogram!(m::HTTP_REQUEST_DURATION_SECONDS, m::LABEL_ROUTE => route)
        .record(started.elapsed().as_secs_f64());
    response
}
