//! `/v1/otp/send` and `/v1/otp/verify`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tracing::{debug, error};

use super::AppState;
use super::extract::{ApiJson, Caller, Peer};
use super::problem::ApiError;
use crate::carrier::OutboundSms;
use crate::otp::{Code, IssueError, Verdict};
use crate::phone::PhoneNumber;
use crate::ratelimit::{Limit, Refused};
use crate::template::is_locale;

#[derive(Deserialize)]
pub struct SendRequest {
    phone: String,
    /// A language tag (`nl`, `pt-BR`) choosing the message template; unknown ones get the default.
    locale: Option<String>,
    /// Where changes of the SMS's delivery state are POSTed.
    callback_url: Option<String>,
}

#[derive(Serialize)]
pub struct SendResponse {
    id: String,
    phone: String,
    status: &'static str,
    expires_in: u64,
}

#[derive(Deserialize)]
pub struct VerifyRequest {
    phone: String,
    code: String,
}

#[derive(Serialize)]
pub struct VerifyResponse {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_left: Option<u32>,
}

/// Issues a code and queues its SMS.
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    peer: Peer,
    ApiJson(request): ApiJson<SendRequest>,
) -> Result<(StatusCode, Json<SendResponse>), ApiError> {
    let phone = state.destination(&request.phone)?;
    if request
        .locale
        .as_deref()
        .is_some_and(|locale| !is_locale(locale))
    {
        return Err(ApiError::InvalidLocale);
    }
    let callback = state.callback(request.callback_url.as_deref(), &caller)?;
    state
        .limits
        .check_send(&phone, peer.sender(&caller))
        .map_err(ApiError::rate_limited)?;
    state.admit_sms(&phone)?;
    let issued = state.otp.issue(&phone).map_err(|err| match err {
        IssueError::StoreFull(_) => {
            ApiError::Unavailable("too many codes are pending; try again later")
        }
        IssueError::Entropy(err) => {
            error!(%err, "cannot issue a code");
            ApiError::Internal
        }
    })?;
    let ttl = issued.expires_in;
    let text = state.messages.text(
        request.locale.as_deref(),
        issued.code.expose(),
        ttl.as_secs().div_ceil(60),
    );
    let sms = OutboundSms {
        id: issued.id.0.clone(),
        to: phone.clone(),
        from: None,
        text,
        // On the injected clock, like the code's own expiry.
        deadline: state.clock.now() + ttl,
        superseded: Some({
            let (otp, phone, id) = (state.otp.clone(), phone.clone(), issued.id.clone());
            Arc::new(move || otp.replaced(&phone, &id))
        }),
        unanswered_writes: 0,
    };
    if let Err(err) = state.enqueue_sms(sms, callback) {
        // A code nobody will receive must not stay guessable, nor count as received.
        state.otp.revoke(&phone, &issued.id);
        state.sms_budget.give_back(&phone);
        return Err(err);
    }
    state.pumping.queued(&phone, true);
    debug!(to = %phone.masked(), id = %issued.id.0, "code issued");
    Ok((
        StatusCode::ACCEPTED,
        Json(SendResponse {
            id: issued.id.0,
            phone: phone.to_string(),
            status: "pending",
            expires_in: ttl.as_secs(),
        }),
    ))
}

/// Judges one attempt.
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    // No code, a wrong code and the right one do the same work (`OtpService::verify`), but a
    // pending code's lookup touches memory that no code's does not (about a microsecond
    // measured, tests/timing.rs): the answer waits until a floor that covers it.
    let floor = tokio::time::Instant::now() + state.verify_floor;
    let phone = PhoneNumber::parse(&request.phone)?;
    let code = Code::parse(&request.code, state.otp.policy().code_length)?;
    state
        .limits
        .check_verify(&phone)
        .map_err(ApiError::rate_limited)?;
    let verdict = state.otp.verify(&phone, &code);
    tokio::time::sleep_until(floor).await;
    if let Verdict::Locked { retry_after } = verdict {
        return Err(ApiError::rate_limited(Refused {
            limit: Limit::NumberLocked,
            retry_after,
        }));
    }
    if verdict == Verdict::Approved {
        state.pumping.verified(&phone);
    }
    let attempts_left = match verdict {
        Verdict::Denied { attempts_left } => Some(attempts_left),
        _ => None,
    };
    Ok(Json(VerifyResponse {
        status: verdict.as_str(),
        attempts_left,
    }))
}

/// What became of the SMS for code `id`.
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Generic SMS have their own route; sign-in SMS have none (their state would tell whether
    // a number is registered).
    if id.starts_with("sms-") || id.starts_with("signin-") {
        return Err(ApiError::UnknownId);
    }
    status_response(&state, id)
}

/// The delivery record of `id` as both status routes (and webhooks) show it.
pub(super) fn status_response(
    state: &AppState,
    id: String,
) -> Result<Json<serde_json::Value>, ApiError> {
    let delivery = state.deliveries.get(&id).ok_or(ApiError::UnknownId)?;
    Ok(Json(delivery.view(&id)))
}
