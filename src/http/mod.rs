//! The HTTP API for identity frontends (`/v1`) and operators (`/healthz`, `/readyz`, `/metrics`).

pub mod extract;
pub mod ops;
pub mod otp;
pub mod problem;
pub mod serve;
pub mod sms;
mod write_deadline;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::carrier::{Carriers, EnqueueError, OutboundSms};
use crate::delivery::{DeliveryState, DeliveryTracker};
use crate::otp::OtpService;
use crate::phone::PhoneNumber;
use crate::ratelimit::RateLimits;
use crate::template::Messages;
use extract::ApiKeys;
use problem::ApiError;

/// Shared state of every handler: one cheap-to-clone handle built at start-up. axum clones it
/// for every extractor and middleware of every request, so it is one `Arc` (one reference count)
/// rather than a struct of a dozen handles (measured: ~6% of the daemon's CPU under load).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What the handlers share.
pub struct Shared {
    pub otp: OtpService,
    pub limits: RateLimits,
    pub carriers: Carriers,
    pub api_keys: ApiKeys,
    pub sms_keys: ApiKeys,
    /// How long a generic SMS may wait for the carrier.
    pub sms_validity: std::time::Duration,
    pub messages: Messages,
    pub metrics: PrometheusHandle,
    pub max_body_bytes: usize,
    /// Time a client has to send the whole request body.
    pub body_read_timeout: std::time::Duration,
    pub deliveries: DeliveryTracker,
    /// Which callback URLs are accepted.
    pub callbacks: crate::webhooks::WebhookSettings,
}

impl Shared {
    /// The number an SMS is for: valid E.164, and served by some route.
    pub fn destination(&self, raw: &str) -> Result<PhoneNumber, ApiError> {
        let phone = PhoneNumber::parse(raw)?;
        if !self.carriers.serves(&phone) {
            return Err(ApiError::NoRoute);
        }
        Ok(phone)
    }

    /// Opens the delivery record of `sms` (with its caller's `callback_url`) and queues it for
    /// the carrier its routes choose. A full queue ends the record as failed and tells the
    /// caller to retry.
    pub fn enqueue_sms(
        &self,
        sms: OutboundSms,
        callback_url: Option<&str>,
    ) -> Result<(), ApiError> {
        let id = sms.id.clone();
        self.deliveries.queued_with_callback(&id, callback_url);
        match self.carriers.try_enqueue(sms) {
            Ok(()) => Ok(()),
            Err(err) => {
                let (reason, answer) = match err {
                    EnqueueError::QueueFull => (
                        "queue full",
                        ApiError::Unavailable("the SMS queue is full; try again later"),
                    ),
                    EnqueueError::NoRoute => ("no route", ApiError::NoRoute),
                    EnqueueError::ShuttingDown => (
                        "shutting down",
                        ApiError::Unavailable("the daemon is shutting down; try another"),
                    ),
                };
                self.deliveries
                    .ended(&id, DeliveryState::Failed, Some(reason.to_owned()));
                Err(answer)
            }
        }
    }
}

/// Every route the daemon serves, as (method, path); `docs/openapi.yaml` documents exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/otp/send"),
    ("POST", "/v1/otp/verify"),
    ("GET", "/v1/otp/{id}"),
    ("POST", "/v1/sms"),
    ("GET", "/v1/sms/{id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// The API router; `metrics_route` is false when metrics have their own listener.
pub fn router(state: AppState, metrics_route: bool) -> Router {
    let v1 = Router::new()
        .route("/v1/otp/send", post(otp::send))
        .route("/v1/otp/verify", post(otp::verify))
        .route("/v1/otp/{id}", get(otp::status))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            extract::require_api_key,
        ));
    let generic_sms = Router::new()
        .route("/v1/sms", post(sms::send))
        .route("/v1/sms/{id}", get(sms::status))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            extract::require_sms_key,
        ));
    let mut router = Router::new()
        .merge(v1)
        .merge(generic_sms)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz));
    if metrics_route {
        router = router.route("/metrics", get(ops::metrics));
    }
    router
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(middleware::from_fn(ops::track))
        .with_state(state)
}

/// The router of a separate metrics listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .with_state(state)
}
