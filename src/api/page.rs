//! The web page at `/`: a person joins or opens a conference from a browser. Its files are
//! compiled into the server: the page, its script, and JsSIP bundled from npm (`web/`, pinned
//! by `web/package-lock.json`; `npm run vendor` there rebuilds `web/vendor/jssip.min.js`).

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../../web/index.html");
const APP: &str = include_str!("../../web/app.js");
const JSSIP: &str = include_str!("../../web/vendor/jssip.min.js");

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route("/app.js", get(|| async { file(JAVASCRIPT, APP) }))
        .route("/jssip.min.js", get(|| async { file(JAVASCRIPT, JSSIP) }))
        // No icon: an empty answer rather than a 404 in every page's console.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The page's scripts and connections come from this server only, and no other site may frame
/// it (clickjacking). The one inline part is the page's `<style>`.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; connect-src 'self'; media-src 'self' blob: mediastream:; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}
