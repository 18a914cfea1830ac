//! `/v1/sms`: any text to any number through the same pipeline as codes, with its own key scope.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use smpp_wire::segment;
use tracing::{debug, error};

use super::AppState;
use super::extract::{ApiJson, Caller, Peer};
use super::otp::status_response;
use super::problem::ApiError;
use crate::carrier::OutboundSms;
use crate::phone::PhoneNumber;

/// Generic SMS ids carry this prefix, so the OTP and SMS status routes never answer for each
/// other's messages.
const ID_PREFIX: &str = "sms-";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsRequest {
    to: String,
    text: String,
    /// `+digits`, a short code, or up to 11 letters and digits.
    from: Option<String>,
    /// Where changes of the SMS's delivery state are POSTed.
    callback_url: Option<String>,
}

#[derive(Serialize)]
pub struct SmsResponse {
    id: String,
    to: String,
    parts: usize,
    status: &'static str,
}

/// Whether `from` can be a sender: E.164, a short code of up to 15 digits, or an alphanumeric
/// name of at most 11 characters (what handsets show).
fn valid_sender(from: &str) -> bool {
    match from.strip_prefix('+') {
        Some(_) => PhoneNumber::parse(from).is_ok(),
        None if from.bytes().all(|b| b.is_ascii_digit()) => (1..=15).contains(&from.len()),
        None => {
            (1..=11).contains(&from.len())
                && from
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-' | b'.' | b'_'))
        }
    }
}

fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| {
        error!(%err, "cannot draw an SMS id");
        ApiError::Internal
    })?;
    Ok(bytes.iter().fold(String::from(ID_PREFIX), |mut id, b| {
        id.push_str(&format!("{b:02x}"));
        id
    }))
}

/// Queues one SMS.
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    peer: Peer,
    ApiJson(request): ApiJson<SmsRequest>,
) -> Result<(StatusCode, Json<SmsResponse>), ApiError> {
    let to = state.destination(&request.to)?;
    if request
        .from
        .as_deref()
        .is_some_and(|from| !valid_sender(from))
    {
        return Err(ApiError::InvalidSender);
    }
    // A bank's name as `from` is the client's to use only if it was given to it.
    if let Some(from) = &request.from
        && !caller.0.may_send_from(from)
    {
        return Err(ApiError::SenderNotAllowed);
    }
    let callback = state.callback(request.callback_url.as_deref(), &caller)?;
    if request.text.is_empty() {
        return Err(ApiError::InvalidText("text must not be empty".to_owned()));
    }
    // Counted (not split) to refuse what cannot be sent and to tell the caller the part count;
    // the carrier splits with its own concatenation settings.
    let coding = segment::choose(&request.text, false);
    let parts = segment::count(&request.text, coding, segment::Concatenation::Udh8)
        .map_err(|err| ApiError::InvalidText(err.to_string()))?;
    state
        .limits
        .check_sms_send(peer.sender(&caller))
        .map_err(ApiError::rate_limited)?;
    // Generic SMS draw on the same per-number budget as codes.
    state.admit_sms(&to)?;
    let id = new_id()?;
    let sms = OutboundSms {
        id: id.clone(),
        to: to.clone(),
        from: request.from,
        text: request.text,
        deadline: state.clock.now() + state.sms_validity,
        superseded: None,
        unanswered_writes: 0,
    };
    if let Err(err) = state.enqueue_sms(sms, callback) {
        state.sms_budget.give_back(&to);
        return Err(err);
    }
    state.pumping.queued(&to, false);
    debug!(to = %to.masked(), %id, parts, "SMS queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(SmsResponse {
            id,
            to: to.to_string(),
            parts,
            status: "queued",
        }),
    ))
}

/// What became of SMS `id`.
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !id.starts_with(ID_PREFIX) {
        return Err(ApiError::UnknownId);
    }
    status_response(&state, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_numbers_short_codes_or_short_names() {
        for ok in ["+3197010000000", "12345", "Contoso", "My-App 1"] {
            assert!(valid_sender(ok), "{ok}");
        }
        for bad in ["+31", "1234567890123456", "TwelveChars!", "", "Ça va"] {
            assert!(!valid_sender(bad), "{bad}");
        }
        assert!(new_id().expect("entropy").starts_with("sms-"));
    }
}
