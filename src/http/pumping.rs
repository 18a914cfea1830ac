//! `/v1/pumping/blocks`: the conversion breaker's trips in force, and lifting one (scope
//! `admin`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::extract::Caller;
use super::problem::ApiError;

/// Every prefix with a trip in force (shadow trips too, marked by their mode).
pub async fn blocks(State(state): State<AppState>) -> Json<Value> {
    let breaker = state.pumping.breaker();
    let blocks: Vec<Value> = breaker
        .blocks()
        .into_iter()
        .map(|block| {
            json!({
                "prefix": format!("+{}", block.prefix),
                "mode": block.trip.mode.as_str(),
                "since": humantime::format_rfc3339_seconds(block.trip.since).to_string(),
                "remaining_seconds": block.remaining.as_secs(),
                "sent": block.trip.sent,
                "verified": block.trip.verified,
            })
        })
        .collect();
    Json(json!({ "mode": breaker.mode().as_str(), "blocks": blocks }))
}

/// Lifts the trip of `prefix` (`+44770` or `44770`): 204, or 404 when none is in force.
pub async fn lift(
    State(state): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
) -> Result<StatusCode, ApiError> {
    let digits = prefix.strip_prefix('+').unwrap_or(&prefix);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(
            "prefix must be + and up to 15 digits, as GET /v1/pumping/blocks lists it".into(),
        ));
    }
    if state.pumping.lift(digits, caller.name()) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
