//! The console's static files, compiled into the binary: its stylesheet, its script, and htmx
//! (vendored from npm `htmx.org` 2.0.11 with its licence beside it; never loaded from a CDN).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const HTMX: &[u8] = include_bytes!("assets/htmx-2.0.11.min.js");
const SCRIPT: &[u8] = include_bytes!("assets/console.js");
const STYLE: &[u8] = include_bytes!("assets/console.css");
const ICON: &[u8] = include_bytes!("assets/favicon.svg");

pub(super) async fn serve(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "console.css" => (STYLE, "text/css; charset=utf-8"),
        "favicon.svg" => (ICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    // Revalidated hourly: a new release's assets reach browsers without a cache-busting name.
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}
