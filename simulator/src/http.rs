//! The tester's HTTP API: read what the "phones" received, inject MO, script faults, drop
//! sessions, read counters and Prometheus metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::faults::FaultSpec;
use crate::mo::{self, MoError};
use crate::stats::StatsSnapshot;
use crate::store::{Direction, Filter};

const MAX_LIMIT: usize = 1000;
const MAX_WAIT_MS: u64 = 30_000;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/messages", get(list).delete(clear))
        .route("/api/messages/latest", get(latest))
        .route("/api/messages/{id}", get(one))
        .route("/api/mo", post(send_mo))
        .route(
            "/api/faults",
            get(faults).put(set_faults).delete(clear_faults),
        )
        .route("/api/sessions/drop", post(drop_sessions))
        .route("/api/sessions/unbind", post(unbind_sessions))
        .route("/api/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/", get(inbox))
        .route("/api/events", get(events))
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
struct MessageQuery {
    to: Option<String>,
    from: Option<String>,
    account: Option<String>,
    since: Option<String>,
    direction: Option<String>,
    /// Also list the segments of concatenated messages.
    #[serde(default)]
    parts: bool,
    limit: Option<usize>,
    /// Long-poll (latest only): wait up to this many milliseconds for a match.
    wait_ms: Option<u64>,
}

impl MessageQuery {
    fn filter(&self) -> Result<Filter, String> {
        let direction = match self.direction.as_deref() {
            None => None,
            Some("mt") => Some(Direction::Mt),
            Some("mo") => Some(Direction::Mo),
            Some(other) => return Err(format!("direction must be mt or mo, not {other:?}")),
        };
        Ok(Filter {
            to: self.to.clone(),
            from: self.from.clone(),
            account: self.account.clone(),
            since: self.since.clone(),
            direction,
            parts: self.parts,
        })
    }
}

async fn list(State(shared): State<Arc<Shared>>, Query(query): Query<MessageQuery>) -> Response {
    match query.filter() {
        Ok(filter) => Json(
            shared
                .store
                .list(&filter, query.limit.unwrap_or(100).min(MAX_LIMIT)),
        )
        .into_response(),
        Err(message) => problem(StatusCode::BAD_REQUEST, &message),
    }
}

async fn latest(State(shared): State<Arc<Shared>>, Query(query): Query<MessageQuery>) -> Response {
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(message) => return problem(StatusCode::BAD_REQUEST, &message),
    };
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
    match shared.store.latest_within(&filter, wait).await {
        Some(message) => Json(message).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no message matches"),
    }
}

async fn one(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match shared.store.get(&id) {
        Some(message) => Json(message).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no message with that id (or it was evicted)",
        ),
    }
}

async fn clear(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({ "deleted": shared.store.clear() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoRequest {
    from: String,
    to: String,
    text: String,
    account: Option<String>,
}

async fn send_mo(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<MoRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return problem(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    match mo::send(
        &shared,
        request.account.as_deref(),
        &request.from,
        &request.to,
        &request.text,
    ) {
        Ok(id) => (StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response(),
        Err(err @ MoError::NoReceiver) => problem(StatusCode::CONFLICT, &err.to_string()),
        Err(err @ MoError::Busy) => problem(StatusCode::SERVICE_UNAVAILABLE, &err.to_string()),
    }
}

#[derive(Deserialize)]
struct AccountQuery {
    account: Option<String>,
}

async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.faults.view()).into_response()
}

async fn set_faults(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<AccountQuery>,
    body: Result<Json<FaultSpec>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(spec) = match body {
        Ok(body) => body,
        Err(rejection) => return problem(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    match shared.faults.set(query.account.as_deref(), spec) {
        Ok(()) => Json(shared.faults.view()).into_response(),
        Err(message) => problem(StatusCode::BAD_REQUEST, &message),
    }
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    shared.faults.clear();
    Json(shared.faults.view()).into_response()
}

async fn drop_sessions(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<AccountQuery>,
) -> Json<serde_json::Value> {
    Json(json!({ "dropped": shared.registry.drop_sessions(query.account.as_deref()) }))
}

async fn unbind_sessions(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<AccountQuery>,
) -> Json<serde_json::Value> {
    Json(json!({ "unbinding": shared.registry.unbind_sessions(query.account.as_deref()) }))
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<StatsSnapshot> {
    Json(shared.snapshot())
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut response = shared
        .metrics
        .render(&shared.registry, &shared.store)
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The web inbox: phones on the left, the conversation on the right, updated live.
async fn inbox() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../assets/inbox.html"))
}

/// Server-Sent Events: every new whole message as `event: message` with its JSON.
async fn events(
    State(shared): State<Arc<Shared>>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let receiver = shared.store.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(message) if message.segment.is_none() => {
                    let event = Event::default()
                        .event("message")
                        .json_data(&message)
                        .unwrap_or_default();
                    return Some((Ok(event), receiver));
                }
                Ok(_) => continue,
                // A slow reader missed some; it can re-read the list. Keep streaming.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
