//! The web client, embedded in the binary (no CDN, nothing fetched at run time).
//!
//! `/j` is the patient page, `/app` the kiné dashboard, `/embed/` the iframe, `/embed.js` the
//! `<telesoin-call>` element; every other file of `web-client/` is under `/ui/`.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::app::AppState;

#[derive(RustEmbed)]
#[folder = "../../web-client/"]
#[exclude = "*.md"]
#[exclude = "tsconfig.json"]
struct Assets;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { axum::response::Redirect::to("/app") }))
        .route("/j", get(|| async { file("join/index.html") }))
        .route("/app", get(|| async { file("app/index.html") }))
        .route("/app/", get(|| async { file("app/index.html") }))
        .route("/embed/", get(|| async { file("embed/index.html") }))
        .route("/embed.js", get(|| async { file("embed/embed.js") }))
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>| async move { file(&path) }),
        )
}

fn file(path: &str) -> Response {
    if path
        .split('/')
        .any(|seg| seg == ".." || seg.starts_with('.'))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(content) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "introuvable / not found").into_response();
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut res = content.data.into_owned().into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    // Pages and modules change with the binary; revalidate rather than serve a stale client.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
