//! The HTTP API for identity frontends (`/v1`) and operators (`/healthz`, `/readyz`, `/metrics`).

pub mod admin;
pub mod client_ip;
pub mod directory;
pub mod extract;
pub mod ops;
pub mod otp;
pub mod problem;
pub mod pumping;
pub mod serve;
pub mod signin;
pub mod sms;
pub mod tls;
mod write_deadline;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use crate::config::clients::Scope;
use crate::directory::Directory;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::carrier::{Carriers, EnqueueError, OutboundSms};
use crate::delivery::{DeliveryState, DeliveryTracker};
use crate::otp::OtpService;
use crate::phone::PhoneNumber;
use crate::ratelimit::RateLimits;
use crate::template::Messages;
use extract::{ApiClients, Need};
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
    pub limits: RateLimits<crate::clock::Governed>,
    pub carriers: Carriers,
    pub clients: ApiClients,
    /// The sign-in directory, when `[directory]` is configured.
    pub directory: Option<Arc<dyn Directory>>,
    pub signin: Option<crate::signin::SignIn>,
    /// Serve the admin console and the test sign-in page.
    pub admin_console: bool,
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
    /// The daemon's clock: an SMS's deadline is on it, like its code's expiry.
    pub clock: crate::clock::SharedClock,
    /// SMS per number per day, and the waits between them.
    pub sms_budget: Arc<crate::sms_budget::SmsBudget>,
    /// Pumping and toll-fraud rules: destinations, velocity, the conversion breaker.
    pub pumping: Arc<crate::pumping::Pumping>,
    /// Whose client-IP header is believed (the per-address send limit, the sign-in log).
    pub client_ip: client_ip::ClientIp,
    /// `/metrics` answers only a key with the scope `metrics`.
    pub metrics_require_key: bool,
    /// The least time a judged verification takes to answer.
    pub verify_floor: std::time::Duration,
}

impl Shared {
    /// Takes one SMS from `phone`'s budget (see `sms_budget`).
    pub fn take_sms(&self, phone: &PhoneNumber) -> Result<(), ApiError> {
        self.sms_budget.take(phone).map_err(ApiError::rate_limited)
    }

    /// The number an SMS is for: valid E.164, permitted by the destination rules, and served
    /// by some route.
    pub fn destination(&self, raw: &str) -> Result<PhoneNumber, ApiError> {
        let phone = PhoneNumber::parse(raw)?;
        self.pumping.permitted(&phone)?;
        self.routed(phone)
    }

    /// Takes one SMS to `phone` from the pumping limits (breaker, prefix, country) and from its
    /// number's budget; call after the cheaper per-number limits.
    pub fn admit_sms(&self, phone: &PhoneNumber) -> Result<(), ApiError> {
        self.pumping.admit(phone)?;
        self.take_sms(phone)
    }

    /// `phone`, if some route serves it.
    pub fn routed(&self, phone: PhoneNumber) -> Result<PhoneNumber, ApiError> {
        if !self.carriers.serves(&phone) {
            return Err(ApiError::NoRoute);
        }
        Ok(phone)
    }

    /// The callback of a send: `url` (checked) signed with the caller's secret, else the
    /// default one.
    pub fn callback(
        &self,
        url: Option<&str>,
        caller: &extract::Caller,
    ) -> Result<Option<crate::webhooks::Callback>, ApiError> {
        let Some(url) = url else { return Ok(None) };
        self.callbacks.check(url)?;
        Ok(Some(crate::webhooks::Callback {
            url: url.into(),
            secret: caller
                .0
                .webhook_secret
                .clone()
                .or_else(|| self.callbacks.default_secret.clone()),
        }))
    }

    /// Opens the delivery record of `sms` (with its caller's callback) and queues it for
    /// the carrier its routes choose. A full queue ends the record as failed and tells the
    /// caller to retry.
    pub fn enqueue_sms(
        &self,
        sms: OutboundSms,
        callback: Option<crate::webhooks::Callback>,
    ) -> Result<(), ApiError> {
        let id = sms.id.clone();
        self.deliveries.queued_with_callback(&id, callback);
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
    ("GET", "/v1/tenants"),
    ("POST", "/v1/tenants"),
    ("GET", "/v1/tenants/{tid}"),
    ("PATCH", "/v1/tenants/{tid}"),
    ("DELETE", "/v1/tenants/{tid}"),
    ("GET", "/v1/tenants/{tid}/users"),
    ("POST", "/v1/tenants/{tid}/users"),
    ("GET", "/v1/tenants/{tid}/users/{uid}"),
    ("PATCH", "/v1/tenants/{tid}/users/{uid}"),
    ("DELETE", "/v1/tenants/{tid}/users/{uid}"),
    ("GET", "/v1/tenants/{tid}/groups"),
    ("POST", "/v1/tenants/{tid}/groups"),
    ("GET", "/v1/tenants/{tid}/groups/{gid}"),
    ("DELETE", "/v1/tenants/{tid}/groups/{gid}"),
    ("GET", "/v1/tenants/{tid}/groups/{gid}/members"),
    ("POST", "/v1/tenants/{tid}/groups/{gid}/members"),
    ("DELETE", "/v1/tenants/{tid}/groups/{gid}/members/{uid}"),
    (
        "GET",
        "/v1/tenants/{tid}/users/{uid}/authentication/phoneMethods",
    ),
    (
        "POST",
        "/v1/tenants/{tid}/users/{uid}/authentication/phoneMethods",
    ),
    (
        "GET",
        "/v1/tenants/{tid}/users/{uid}/authentication/phoneMethods/{mid}",
    ),
    (
        "PATCH",
        "/v1/tenants/{tid}/users/{uid}/authentication/phoneMethods/{mid}",
    ),
    (
        "DELETE",
        "/v1/tenants/{tid}/users/{uid}/authentication/phoneMethods/{mid}",
    ),
    (
        "POST",
        "/v1/tenants/{tid}/users/{uid}/authentication/phoneMethods/{mid}/enableSmsSignIn",
    ),
    (
        "POST",
        "/v1/tenants/{tid}/users/{uid}/authentication/phoneMethods/{mid}/disableSmsSignIn",
    ),
    ("GET", SMS_POLICY),
    ("PATCH", SMS_POLICY),
    ("GET", "/v1/tenants/{tid}/auditLogs/directoryAudits"),
    ("GET", "/v1/tenants/{tid}/auditLogs/signIns"),
    ("POST", "/v1/signin/sms/start"),
    ("POST", "/v1/signin/sms/complete"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/v1/pumping/blocks"),
    ("DELETE", "/v1/pumping/blocks/{prefix}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// The text-message policy of a tenant, at Graph's path.
const SMS_POLICY: &str =
    "/v1/tenants/{tid}/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/sms";

/// `router`'s routes, each group behind the key check its scope needs.
fn guarded(router: Router<AppState>, state: &AppState, need: Need) -> Router<AppState> {
    router.route_layer(middleware::from_fn_with_state(
        (state.clone(), need),
        extract::authorize,
    ))
}

/// The API router; `metrics_route` is false when metrics have their own listener.
pub fn router(state: AppState, metrics_route: bool) -> Router {
    let otp_send = Router::new()
        .route("/v1/otp/send", post(otp::send))
        .route("/v1/otp/{id}", get(otp::status));
    let otp_verify = Router::new().route("/v1/otp/verify", post(otp::verify));
    let generic_sms = Router::new()
        .route("/v1/sms", post(sms::send))
        .route("/v1/sms/{id}", get(sms::status));
    let mut router = Router::new()
        .merge(guarded(otp_send, &state, Need::Scope(Scope::OtpSend)))
        .merge(guarded(otp_verify, &state, Need::Scope(Scope::OtpVerify)))
        .merge(guarded(generic_sms, &state, Need::Scope(Scope::SmsSend)))
        .merge(guarded(pumping_routes(), &state, Need::Scope(Scope::Admin)))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz));
    if state.directory.is_some() {
        router = router
            .merge(guarded(directory_routes(), &state, Need::Directory))
            .merge(guarded(
                audit_routes(),
                &state,
                Need::Scope(Scope::AuditRead),
            ))
            .merge(guarded(signin_routes(), &state, Need::Scope(Scope::SignIn)))
            .route("/.well-known/jwks.json", get(signin::jwks))
            .route(
                "/.well-known/openid-configuration",
                get(signin::openid_configuration),
            );
    }
    if state.admin_console {
        router = router.merge(admin::routes());
    }
    if metrics_route {
        router = router.merge(metrics_route_of(&state));
    }
    router
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(middleware::from_fn(ops::track))
        .with_state(state)
}

fn directory_routes() -> Router<AppState> {
    use directory as d;
    const METHODS: &str = "/v1/tenants/{tid}/users/{uid}/authentication/phoneMethods";
    Router::new()
        .route("/v1/tenants", get(d::list_tenants).post(d::create_tenant))
        .route(
            "/v1/tenants/{tid}",
            get(d::get_tenant)
                .patch(d::update_tenant)
                .delete(d::delete_tenant),
        )
        .route(
            "/v1/tenants/{tid}/users",
            get(d::list_users).post(d::create_user),
        )
        .route(
            "/v1/tenants/{tid}/users/{uid}",
            get(d::get_user)
                .patch(d::update_user)
                .delete(d::delete_user),
        )
        .route(
            "/v1/tenants/{tid}/groups",
            get(d::list_groups).post(d::create_group),
        )
        .route(
            "/v1/tenants/{tid}/groups/{gid}",
            get(d::get_group).delete(d::delete_group),
        )
        .route(
            "/v1/tenants/{tid}/groups/{gid}/members",
            get(d::list_members).post(d::add_member),
        )
        .route(
            "/v1/tenants/{tid}/groups/{gid}/members/{uid}",
            axum::routing::delete(d::remove_member),
        )
        .route(METHODS, get(d::list_methods).post(d::add_method))
        .route(
            &format!("{METHODS}/{{mid}}"),
            get(d::get_method)
                .patch(d::update_method)
                .delete(d::delete_method),
        )
        .route(
            &format!("{METHODS}/{{mid}}/enableSmsSignIn"),
            post(d::enable_sign_in),
        )
        .route(
            &format!("{METHODS}/{{mid}}/disableSmsSignIn"),
            post(d::disable_sign_in),
        )
        .route(SMS_POLICY, get(d::get_policy).patch(d::update_policy))
}

fn pumping_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/pumping/blocks", get(pumping::blocks))
        .route(
            "/v1/pumping/blocks/{prefix}",
            axum::routing::delete(pumping::lift),
        )
}

fn audit_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tid}/auditLogs/directoryAudits",
            get(directory::directory_audits),
        )
        .route(
            "/v1/tenants/{tid}/auditLogs/signIns",
            get(directory::sign_ins),
        )
}

fn signin_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/signin/sms/start", post(signin::start))
        .route("/v1/signin/sms/complete", post(signin::complete))
}

/// `/metrics`, behind a key with the scope `metrics` when so configured.
fn metrics_route_of(state: &AppState) -> Router<AppState> {
    let route = Router::new().route("/metrics", get(ops::metrics));
    if state.metrics_require_key {
        guarded(route, state, Need::Scope(Scope::Metrics))
    } else {
        route
    }
}

/// The router of a separate metrics listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .merge(metrics_route_of(&state))
        .fallback(ops::not_found)
        .with_state(state)
}
