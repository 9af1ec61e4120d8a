//! Cross-site request forgery defences of the dashboard API (cookie-authenticated `/api/...`,
//! not the bearer-only `/api/v1`).
//!
//! `SameSite=Strict` does not stop a page of the same *site* (another port, a sibling
//! subdomain) from posting a form with the kiné's cookie, so every state-changing request
//! (anything but GET, HEAD, OPTIONS) passes two checks:
//! 1. **Origin**: the `Origin` header must be the public URL's origin (or the origin the request
//!    was addressed to, `scheme://Host`, for a node of a cluster reached directly); without it,
//!    `Sec-Fetch-Site` must be `same-origin`; without both, the `Referer`'s origin must match.
//!    A request with none of the three is refused (browsers always send `Origin` on a POST).
//! 2. **Token** (when the request carries a session cookie): the `X-CSRF-Token` header must equal
//!    the session's token, `base64url(SHA-256("telesoin-csrf-v1:" + session cookie))`. The login
//!    and `/api/me` hand it to the page in their `X-CSRF-Token` response header, never in a
//!    cookie: a page on another port of the same host can read and plant cookies, but cannot
//!    read our responses nor compute the value bound to the HttpOnly session cookie.
//!
//! Refusals: 403 `cross_site_request` or `csrf_token_invalid`, French and English.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use telesoin_core::RefusalCode;

use crate::app::{AppState, origin_of};
use crate::auth;

/// The request header that carries the token.
pub const HEADER: &str = "x-csrf-token";

/// The CSRF token bound to a session cookie value.
pub fn token_for(session_cookie: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"telesoin-csrf-v1:");
    h.update(session_cookie.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Puts the session's token in the response's `X-CSRF-Token` header.
pub fn hand_over(res: &mut Response, session_cookie: &str) {
    if let Ok(v) = axum::http::HeaderValue::from_str(&token_for(session_cookie)) {
        res.headers_mut().insert(HEADER, v);
    }
}

/// Whether the request comes from one of `ours` (origins), by the browser's own headers.
pub fn same_origin(headers: &HeaderMap, ours: &[&str]) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let is_ours = |o: &str| ours.iter().any(|x| x.eq_ignore_ascii_case(o));
    if let Some(origin) = headers.get(header::ORIGIN) {
        // `null` (sandboxed frames, file://, some redirects) is never ours.
        return origin.to_str().is_ok_and(is_ours);
    }
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin";
    }
    if let Some(referer) = text(header::REFERER.as_str()) {
        return is_ours(&origin_of(referer));
    }
    false
}

/// The public URL's origin, and `scheme://Host` of this request (the same origin when the
/// server is reached by its public name; a cluster node's own when reached directly).
fn our_origins(app: &AppState, req: &Request) -> (String, Option<String>) {
    let public = origin_of(&app.public_url);
    let scheme = public.split("://").next().unwrap_or("https");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let addressed = host.map(|h| format!("{scheme}://{h}"));
    (public, addressed)
}

/// Routes a logged-out page posts to: the origin is checked, there is no session token yet
/// (the join page's requests carry the join token or code in their body, whatever cookie the
/// browser also holds).
fn needs_no_token(path: &str) -> bool {
    matches!(
        path,
        "/api/login"
            | "/api/join-info"
            | "/api/join-code"
            | "/api/join-price"
            | "/api/join-price/accept"
    )
}

/// Whether `path` is the bearer-only platform API.
fn is_platform_api(path: &str) -> bool {
    path == "/api/v1" || path.starts_with("/api/v1/")
}

/// The middleware: applies to state-changing requests under `/api/` except `/api/v1`.
pub async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || !path.starts_with("/api/") || is_platform_api(path) {
        return next.run(req).await;
    }
    let (public, addressed) = our_origins(&app, &req);
    let ours: Vec<&str> = std::iter::once(public.as_str())
        .chain(addressed.as_deref())
        .collect();
    if !same_origin(req.headers(), &ours) {
        tracing::info!(route = path_kind(path), "cross-site request refused");
        return crate::error::ApiError::refusal(RefusalCode::CrossSiteRequest).into_response();
    }
    if !needs_no_token(path)
        && let Some(session) = auth::cookie_value(req.headers())
    {
        let expected = token_for(&session);
        let sent = req
            .headers()
            .get(HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(sent.ct_eq(expected.as_bytes())) {
            tracing::info!(
                route = path_kind(path),
                "request without a valid CSRF token refused"
            );
            return crate::error::ApiError::refusal(RefusalCode::CsrfTokenInvalid).into_response();
        }
    }
    next.run(req).await
}

/// The first path segment after `/api/`, for logs (ids are never logged).
fn path_kind(path: &str) -> &str {
    path.trim_start_matches("/api/")
        .split('/')
        .next()
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_table() {
        let ours = "https://tele.example.fr";
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("origin", "https://tele.example.fr")], true),
            (&[("origin", "HTTPS://TELE.EXAMPLE.FR")], true),
            (&[("origin", "https://tele.example.fr:8443")], false),
            (&[("origin", "https://evil.example.fr")], false),
            (&[("origin", "http://tele.example.fr")], false),
            (&[("origin", "null")], false),
            // Origin wins over a matching Sec-Fetch-Site.
            (
                &[
                    ("origin", "https://x.example.fr"),
                    ("sec-fetch-site", "same-origin"),
                ],
                false,
            ),
            (&[("sec-fetch-site", "same-origin")], true),
            (&[("sec-fetch-site", "same-site")], false),
            (&[("sec-fetch-site", "cross-site")], false),
            (&[("sec-fetch-site", "none")], false),
            (&[("referer", "https://tele.example.fr/app/x")], true),
            (&[("referer", "https://tele.example.fr.evil.fr/app")], false),
            (&[], false),
        ];
        for (pairs, want) in cases {
            assert_eq!(same_origin(&headers(pairs), &[ours]), *want, "{pairs:?}");
        }
    }

    #[test]
    fn token_is_bound_to_the_cookie() {
        assert_eq!(token_for("a"), token_for("a"));
        assert_ne!(token_for("a"), token_for("b"));
        assert_eq!(token_for("a").len(), 43);
    }
}
