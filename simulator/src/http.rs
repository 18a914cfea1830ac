//! The tester's HTTP API: read what the "phones" received, clear it, read counters.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::stats::StatsSnapshot;
use crate::store::{Filter, StoredMessage};

const MAX_LIMIT: usize = 1000;
const MAX_WAIT_MS: u64 = 30_000;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/messages", get(list).delete(clear))
        .route("/api/messages/latest", get(latest))
        .route("/api/stats", get(stats))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such route") })
        .with_state(shared)
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[derive(Deserialize)]
struct ListQuery {
    to: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<ListQuery>,
) -> Json<Vec<StoredMessage>> {
    let filter = Filter { to: query.to };
    let limit = query.limit.unwrap_or(100).min(MAX_LIMIT);
    Json(shared.store.list(&filter, limit))
}

#[derive(Deserialize)]
struct LatestQuery {
    to: Option<String>,
    /// Long-poll: wait up to this many milliseconds for a matching message.
    wait_ms: Option<u64>,
}

async fn latest(State(shared): State<Arc<Shared>>, Query(query): Query<LatestQuery>) -> Response {
    let filter = Filter { to: query.to };
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
    match shared.store.latest_within(&filter, wait).await {
        Some(message) => Json(message).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no message matches"),
    }
}

async fn clear(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({ "deleted": shared.store.clear() }))
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<StatsSnapshot> {
    Json(shared.snapshot())
}
