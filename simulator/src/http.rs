//! The tester's HTTP API: read what the "phones" received, inject MO, script faults, drop
//! sessions, read counters and Prometheus metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::clock::rfc3339;
use crate::concat::Incomplete;
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
        .route("/api/sessions", get(sessions))
        .route("/api/pcap", get(pcap))
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

/// The query string as `T`, or a 400 problem naming what is wrong: an unknown parameter (a
/// misspelled `to` would otherwise match every phone) or a value that does not parse.
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Box<Response>> {
    query
        .map(|Query(value)| value)
        .map_err(|rejection| Box::new(problem(StatusCode::BAD_REQUEST, &rejection.body_text())))
}

/// The query of a call that takes none: any parameter is refused (`DELETE /api/messages?to=…`
/// would otherwise clear every phone's messages).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

type Params<T> = Result<Query<T>, QueryRejection>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageQuery {
    to: Option<String>,
    from: Option<String>,
    account: Option<String>,
    since: Option<String>,
    direction: Option<String>,
    /// Also list the segments of concatenated messages.
    #[serde(default)]
    parts: bool,
    /// Also list refused submits (with their `submit_status`).
    #[serde(default)]
    refused: bool,
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
            refused: self.refused,
        })
    }
}

/// Whole messages newest first, with concatenated messages still missing parts among them
/// (`"incomplete": true`, the parts they have and the ones they miss).
async fn list(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<MessageQuery>, QueryRejection>,
) -> Response {
    let query = match query(params) {
        Ok(query) => query,
        Err(response) => return *response,
    };
    if query.wait_ms.is_some() {
        return problem(
            StatusCode::BAD_REQUEST,
            "wait_ms applies to /api/messages/latest only",
        );
    }
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(message) => return problem(StatusCode::BAD_REQUEST, &message),
    };
    let limit = query.limit.unwrap_or(100).min(MAX_LIMIT);
    let mut listed: Vec<(String, serde_json::Value)> = shared
        .store
        .list(&filter, limit)
        .into_iter()
        .map(|m| (m.received_at.clone(), json!(m)))
        .collect();
    for group in shared.reassembly.incomplete() {
        let received_at = rfc3339(group.received);
        let key = &group.key;
        if !filter.matches_fields(
            Direction::Mt,
            &key.from,
            &key.to,
            &key.account,
            &received_at,
        ) {
            continue;
        }
        listed.push((received_at.clone(), incomplete_view(&group, received_at)));
    }
    // Newest first; stable, so equal times keep the store's order.
    listed.sort_by(|a, b| b.0.cmp(&a.0));
    listed.truncate(limit);
    Json(listed.into_iter().map(|(_, v)| v).collect::<Vec<_>>()).into_response()
}

/// How an incomplete concatenated message is listed: the text of the parts it has, in order.
fn incomplete_view(group: &Incomplete, received_at: String) -> serde_json::Value {
    let joined: Vec<u8> = group
        .parts
        .iter()
        .flat_map(|(_, _, data)| data.iter().copied())
        .collect();
    let have: Vec<u8> = group.parts.iter().map(|(seq, _, _)| *seq).collect();
    let missing: Vec<u8> = (1..=group.key.total)
        .filter(|seq| !have.contains(seq))
        .collect();
    json!({
        "direction": Direction::Mt,
        "from": group.key.from,
        "to": group.key.to,
        "account": group.key.account,
        "text": crate::text::decode(group.data_coding, &joined),
        "received_at": received_at,
        "data_coding": group.data_coding,
        "incomplete": true,
        "total": group.key.total,
        "parts": group.parts.iter().map(|(seq, id, _)| json!({ "seq": seq, "id": id })).collect::<Vec<_>>(),
        "missing": missing,
    })
}

async fn latest(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<MessageQuery>, QueryRejection>,
) -> Response {
    let query = match query(params) {
        Ok(query) => query,
        Err(response) => return *response,
    };
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

async fn one(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    params: Params<NoQuery>,
) -> Response {
    if let Err(response) = query(params) {
        return *response;
    }
    match shared.store.get(&id) {
        Some(message) => Json(message).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no message with that id (or it was evicted)",
        ),
    }
}

async fn clear(State(shared): State<Arc<Shared>>, params: Params<NoQuery>) -> Response {
    if let Err(response) = query(params) {
        return *response;
    }
    Json(json!({ "deleted": shared.store.clear() })).into_response()
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
    params: Params<NoQuery>,
    body: Result<Json<MoRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(response) = query(params) {
        return *response;
    }
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
#[serde(deny_unknown_fields)]
struct AccountQuery {
    account: Option<String>,
}

async fn faults(State(shared): State<Arc<Shared>>, params: Params<NoQuery>) -> Response {
    if let Err(response) = query(params) {
        return *response;
    }
    Json(shared.faults.view()).into_response()
}

async fn set_faults(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<AccountQuery>, QueryRejection>,
    body: Result<Json<FaultSpec>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let query = match query(params) {
        Ok(query) => query,
        Err(response) => return *response,
    };
    let Json(spec) = match body {
        Ok(body) => body,
        Err(rejection) => return problem(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    match shared.faults.set(query.account.as_deref(), spec) {
        Ok(()) => Json(shared.faults.view()).into_response(),
        Err(message) => problem(StatusCode::BAD_REQUEST, &message),
    }
}

async fn clear_faults(State(shared): State<Arc<Shared>>, params: Params<NoQuery>) -> Response {
    if let Err(response) = query(params) {
        return *response;
    }
    shared.faults.clear();
    Json(shared.faults.view()).into_response()
}

async fn drop_sessions(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<AccountQuery>, QueryRejection>,
) -> Response {
    match query(params) {
        Ok(query) => {
            Json(json!({ "dropped": shared.registry.drop_sessions(query.account.as_deref()) }))
                .into_response()
        }
        Err(response) => *response,
    }
}

async fn unbind_sessions(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<AccountQuery>, QueryRejection>,
) -> Response {
    match query(params) {
        Ok(query) => {
            Json(json!({ "unbinding": shared.registry.unbind_sessions(query.account.as_deref()) }))
                .into_response()
        }
        Err(response) => *response,
    }
}

/// Every SMPP session whose traffic is kept (open and recently closed), oldest first.
async fn sessions(State(shared): State<Arc<Shared>>, params: Params<NoQuery>) -> Response {
    if let Err(response) = query(params) {
        return *response;
    }
    Json(shared.captures.sessions()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PcapQuery {
    /// One session's id (from `GET /api/sessions`); all sessions when absent.
    session: Option<u64>,
}

/// The SMPP traffic as a pcap file: `tshark -r x.pcap -d tcp.port==PORT,smpp` decodes it.
async fn pcap(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<PcapQuery>, QueryRejection>,
) -> Response {
    let query = match query(params) {
        Ok(query) => query,
        Err(response) => return *response,
    };
    let Some(file) = shared.captures.pcap(query.session) else {
        return problem(
            StatusCode::NOT_FOUND,
            "no such session (or its capture was dropped)",
        );
    };
    let name = match query.session {
        Some(id) => format!("attachment; filename=\"smsc-sim-session-{id}.pcap\""),
        None => "attachment; filename=\"smsc-sim.pcap\"".to_owned(),
    };
    let mut response = file.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.tcpdump.pcap"),
    );
    if let Ok(value) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

async fn stats(State(shared): State<Arc<Shared>>, params: Params<NoQuery>) -> Response {
    if let Err(response) = query(params) {
        return *response;
    }
    Json::<StatsSnapshot>(shared.snapshot()).into_response()
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
