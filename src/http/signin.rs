//! `/v1/signin/sms/start` and `/complete` for identity frontends, and the public keys that
//! verify the assertion (`/.well-known/jwks.json`, `/.well-known/openid-configuration`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::{debug, error, warn};

use super::AppState;
use super::extract::{ApiJson, Caller, Peer};
use super::problem::ApiError;
use crate::carrier::OutboundSms;
use crate::directory::SignInEvent;
use crate::otp::{Code, Verdict};
use crate::phone::PhoneNumber;
use crate::signin::{Completed, SignIn, StartError};

/// Ids of sign-in SMS (their delivery records are internal: no route shows them, since their
/// state would say whether a number is registered). A counter costs no system call.
static SMS_IDS: AtomicU64 = AtomicU64::new(0);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    tenant: String,
    phone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    flow: String,
    code: String,
}

/// Who asked, for the sign-in log: the client, its address and when (on the daemon's clock).
struct Requester<'a> {
    caller: &'a Caller,
    ip: Option<std::net::IpAddr>,
    at: SystemTime,
}

impl<'a> Requester<'a> {
    fn of(state: &AppState, caller: &'a Caller, peer: &Peer) -> Self {
        Self {
            caller,
            ip: peer.ip(),
            at: state.clock.wall(),
        }
    }
}

/// A start's or a complete's record for the sign-in log.
fn event(
    who: &Requester<'_>,
    phase: &'static str,
    tenant: String,
    user_id: Option<String>,
    result: &'static str,
    phone: &PhoneNumber,
) -> SignInEvent {
    SignInEvent {
        at: who.at,
        tenant,
        user_id,
        phase,
        result,
        phone: phone.clone(),
        client: who.caller.name().to_owned(),
        ip: who.ip,
    }
}

fn flows(state: &AppState) -> Result<&SignIn, ApiError> {
    state.signin.as_ref().ok_or(ApiError::NotFound)
}

/// Starts a sign-in. The answer is the same for every number: a real flow for a ready one (and
/// an SMS), a decoy for any other.
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    peer: Peer,
    ApiJson(request): ApiJson<StartRequest>,
) -> Result<Response, ApiError> {
    let signin = flows(&state)?;
    // Only the shape: an unknown tenant of the right shape gets a decoy like any number.
    crate::directory::check_tenant_id(&request.tenant).map_err(ApiError::from)?;
    caller.tenant(&request.tenant)?;
    // The destination rules refuse alike whether or not the number is registered.
    let phone = state.destination(&request.phone)?;
    // Refusals are counted in otpgate_rate_limited_total, not logged one by one: a flood
    // would fill the log.
    state
        .limits
        .check_send(&phone, peer.sender(&caller))
        .map_err(ApiError::rate_limited)?;
    // Every start draws on the number's SMS budget, a decoy's too: a refusal says nothing
    // about whether the number is ready.
    state.admit_sms(&phone)?;
    let started = signin
        .start(&request.tenant, &phone, caller.name())
        .map_err(|err| match err {
            StartError::StoreFull(_) => {
                ApiError::Unavailable("too many sign-ins are pending; try again later")
            }
            StartError::Entropy(err) => {
                error!(%err, "cannot start a sign-in");
                ApiError::Internal
            }
        })?;
    let minutes = started.expires_in.as_secs().div_ceil(60);
    // The text is rendered for decoys too, so both paths do the same work before the queue.
    let text = match &started.code {
        Some(code) => state.messages.text(None, code.expose(), minutes),
        None => state.messages.text(None, "000000", minutes),
    };
    let result = match &started.code {
        None => "notReady",
        Some(_) => {
            let sms = OutboundSms {
                id: format!("signin-{}", SMS_IDS.fetch_add(1, Ordering::Relaxed)),
                to: phone.clone(),
                from: None,
                text,
                deadline: state.clock.now() + started.expires_in,
                superseded: None,
                unanswered_writes: 0,
            };
            match state.enqueue_sms(sms, None) {
                Ok(()) => {
                    state.pumping.queued(&phone, true);
                    "codeSent"
                }
                Err(err) => {
                    // Answered like any start, and the flow goes on like a decoy (no
                    // enumeration); it cannot complete.
                    warn!(%err, to = %phone.masked(), "sign-in SMS not queued");
                    if signin.demote(&started.flow).is_err() {
                        signin.revoke(&started.flow);
                    }
                    "notQueued"
                }
            }
        }
    };
    signin.directory().record_sign_in(event(
        &Requester::of(&state, &caller, &peer),
        "start",
        request.tenant.clone(),
        started.user_id.clone(),
        result,
        &phone,
    ));
    debug!(to = %phone.masked(), result, "sign-in started");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "flow": started.flow, "expires_in": started.expires_in.as_secs() })),
    )
        .into_response())
}

/// Completes a sign-in with the code the user typed.
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    peer: Peer,
    ApiJson(request): ApiJson<CompleteRequest>,
) -> Result<Response, ApiError> {
    let signin = flows(&state)?;
    // A real flow reads the directory again and a decoy does not: the answer waits until the
    // same floor as /v1/otp/verify, so its time does not tell a registered number.
    let floor = tokio::time::Instant::now() + state.verify_floor;
    let code = Code::parse(&request.code, state.otp.policy().code_length)?;
    let completed = signin
        .complete(&request.flow, &code, caller.name())
        .map_err(|err| {
            error!(%err, "cannot finish a sign-in");
            ApiError::Internal
        })?;
    tokio::time::sleep_until(floor).await;
    let body = match completed {
        Completed::Approved {
            user_id,
            tenant,
            phone_method_id,
            assertion,
            expires_in,
            phone,
        } => {
            state.pumping.verified(&phone);
            signin.directory().record_sign_in(event(
                &Requester::of(&state, &caller, &peer),
                "complete",
                tenant,
                Some(user_id.clone()),
                "approved",
                &phone,
            ));
            json!({
                "status": "approved",
                "user_id": user_id,
                "phone_method_id": phone_method_id,
                "assertion": assertion,
                "expires_in": expires_in,
            })
        }
        Completed::Refused {
            verdict: Verdict::Locked { retry_after },
            ..
        } => {
            return Err(ApiError::rate_limited(crate::ratelimit::Refused {
                limit: crate::ratelimit::Limit::NumberLocked,
                retry_after,
            }));
        }
        Completed::Refused {
            verdict,
            tenant,
            user_id,
            phone,
        } => {
            if let (Some(tenant), Some(phone)) = (tenant, phone) {
                signin.directory().record_sign_in(event(
                    &Requester::of(&state, &caller, &peer),
                    "complete",
                    tenant,
                    user_id,
                    verdict.as_str(),
                    &phone,
                ));
            }
            match verdict {
                Verdict::Denied { attempts_left } => {
                    json!({ "status": verdict.as_str(), "attempts_left": attempts_left })
                }
                _ => json!({ "status": verdict.as_str() }),
            }
        }
    };
    Ok(Json(body).into_response())
}

/// The public keys of the assertion, for offline verification.
pub async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let signin = flows(&state)?;
    let mut response = Json(signin.settings().keys.jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

/// Enough OpenID discovery for a verifier to find the issuer, the keys and the algorithms.
pub async fn openid_configuration(State(state): State<AppState>) -> Result<Response, ApiError> {
    let settings = flows(&state)?.settings();
    Ok(Json(json!({
        "issuer": settings.issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", settings.issuer),
        "id_token_signing_alg_values_supported": settings.keys.algorithms(),
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
        "claims_supported": ["iss", "aud", "sub", "tid", "iat", "exp", "jti", "auth_time", "amr",
                             "phone_method_id", "name", "preferred_username"],
    }))
    .into_response())
}
