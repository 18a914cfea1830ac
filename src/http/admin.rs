//! The admin console and the test sign-in page: static pages (no build step) that call only the
//! public API with a key the admin types in. Served under `/admin/` when `[admin] console = true`.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;

/// Each page with its content type.
const PAGES: &[(&str, &str, &str)] = &[
    (
        "/admin/",
        "text/html; charset=utf-8",
        include_str!("../../assets/admin/index.html"),
    ),
    (
        "/admin/console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/admin/console.js"),
    ),
    (
        "/admin/console.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/admin/console.css"),
    ),
    (
        "/admin/signin.html",
        "text/html; charset=utf-8",
        include_str!("../../assets/admin/signin.html"),
    ),
    (
        "/admin/signin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/admin/signin.js"),
    ),
];

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The pages handle keys: nothing else may frame them or run script in them.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub fn routes() -> Router<AppState> {
    let mut router =
        Router::new().route("/admin", get(|| async { Redirect::permanent("/admin/") }));
    for &(path, content_type, body) in PAGES {
        router = router.route(path, get(move || async move { page(content_type, body) }));
    }
    router
}
