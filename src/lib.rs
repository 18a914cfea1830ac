//! otpgate: issues and verifies SMS one-time codes, delivering them over SMPP.
//!
//! Where things are:
//! - `phone`: E.164 parsing; the only way a number enters the core.
//! - `otp`: code generation, MAC, challenge store, verification.
//! - `ratelimit`: send budgets per source address and per API client, per-number limits and
//!   the global ceiling; `sms_budget`: SMS per number per day, with
//!   growing resend intervals.
//! - `pumping`: SMS pumping and toll-fraud rules (geo permissions, numbering plan, line types).
//! - `template`: the SMS text around a code.
//! - `carrier`: the carriers, their routes and circuit breakers, and the SMPP sessions that
//!   deliver messages (a PDU leaves the process in `carrier::session`).
//! - `delivery`: what became of each SMS (receipts, refusals).
//! - `directory`: tenants, users, groups, phone methods and the text-message policy (SQLite),
//!   the in-memory index of numbers ready for SMS sign-in, CSV import and export.
//! - `signin`: SMS sign-in flows (with decoys for unknown numbers) and the signed assertion.
//! - `http`: the API routes (OTP, SMS, directory admin, sign-in, the admin console), request
//!   extraction, scoped keys and error mapping.
//! - `metrics`: metric names and the Prometheus exporter.
//! - `config`: the TOML file and its validation; `app`: wiring and shutdown; `clock`: time.

pub mod app;
pub mod carrier;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod directory;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod otp;
pub mod phone;
pub mod pumping;
pub mod ratelimit;
pub mod signin;
pub mod sms_budget;
pub mod template;
pub mod webhooks;
