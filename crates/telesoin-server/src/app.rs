//! The application state and the router: every route of the server in one place.

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};

use crate::config::{Config, TlsMode};
use crate::hub::Hub;
use crate::keys::Keys;
use crate::{api, auth, oidc, patient_ins, platform, records, web, ws};
use telesoin_store::Store;

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub keys: Arc<Keys>,
    pub hub: Arc<Hub>,
    /// Public base URL, also the `iss` of join tokens.
    pub public_url: Arc<str>,
    /// Origins allowed to open the WebSocket.
    pub origins: Arc<Vec<String>>,
    /// The OpenID Connect login (Pro Santé Connect by default), when `oidc_client_id` is set.
    pub oidc: Option<Arc<crate::oidc::OidcClient>>,
    /// The security headers, computed once.
    headers: Arc<SecurityHeaders>,
    /// Failed-login counts (back-off and lockout).
    pub logins: Arc<crate::throttle::LoginThrottle>,
    /// Where webhooks may connect.
    pub egress: Arc<crate::egress::Policy>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

struct SecurityHeaders {
    csp: HeaderValue,
    permissions: HeaderValue,
    /// The dashboard (`/app`), where the kiné's call lives, may also share a screen or a tab.
    permissions_kine: HeaderValue,
    hsts: Option<HeaderValue>,
}

/// The origin (`scheme://host[:port]`) of a URL.
pub fn origin_of(url: &str) -> String {
    let rest = url
        .split_once("://")
        .map(|(s, r)| (s, r.split('/').next().unwrap_or("")))
        .map(|(s, h)| format!("{s}://{h}"));
    rest.unwrap_or_else(|| url.to_owned())
}

impl AppState {
    pub fn new(
        cfg: Arc<Config>,
        store: Arc<dyn Store>,
        keys: Arc<Keys>,
        hub: Arc<Hub>,
        public_url: String,
    ) -> anyhow::Result<Self> {
        let mut origins = vec![origin_of(&public_url)];
        origins.extend(cfg.allowed_origins.iter().cloned());
        let ancestors = std::iter::once("'self'".to_owned())
            .chain(cfg.embed_origins.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
             connect-src 'self' wss: ws:; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
        );
        let allow = std::iter::once("self".to_owned())
            .chain(cfg.embed_origins.iter().map(|o| format!("\"{o}\"")))
            .collect::<Vec<_>>()
            .join(" ");
        let permissions_for = |display: &str| {
            format!(
                "camera=({allow}), microphone=({allow}), display-capture=({display}), geolocation=(), payment=(), usb=()"
            )
        };
        let permissions = permissions_for("");
        let permissions_kine = permissions_for("self");
        let headers = SecurityHeaders {
            csp: HeaderValue::from_str(&csp)?,
            permissions: HeaderValue::from_str(&permissions)?,
            permissions_kine: HeaderValue::from_str(&permissions_kine)?,
            hsts: (cfg.tls != TlsMode::Off || public_url.starts_with("https://"))
                .then(|| HeaderValue::from_static("max-age=63072000; includeSubDomains")),
        };
        let logins = crate::throttle::LoginThrottle::new(crate::throttle::Policy {
            account_failures: cfg.login_max_failures,
            address_failures: cfg.login_address_max_failures,
            lockout: std::time::Duration::from_secs(cfg.login_lockout_seconds),
        });
        let egress = crate::egress::Policy {
            allowed: crate::egress::Networks::parse(&cfg.webhook_allowed_networks)
                .map_err(|bad| anyhow::anyhow!("webhook_allowed_networks: {bad:?}"))?,
        };
        let oidc = crate::oidc::OidcClient::from_config(&cfg, &public_url)?.map(Arc::new);
        Ok(AppState {
            oidc,
            logins: Arc::new(logins),
            egress: Arc::new(egress),
            cfg,
            store,
            keys,
            hub,
            public_url: public_url.into(),
            origins: Arc::new(origins),
            headers: Arc::new(headers),
        })
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/login/options", get(oidc::options))
        .route("/login/oidc/start", get(oidc::start))
        .route("/login/oidc/callback", get(oidc::callback))
        .route("/me", get(auth::me))
        .route("/acts", get(api::acts))
        .route(
            "/patients",
            get(api::list_patients).post(api::create_patient),
        )
        .route("/patients/{id}", get(api::patient_detail))
        .route("/patients/{id}/ins", put(patient_ins::put_ins))
        .route("/patients/{id}/visits", post(api::add_visit))
        .route("/patients/{id}/consents", post(api::add_consent))
        .route("/patients/{id}/prescriptions", post(api::add_prescription))
        .route("/consents/{id}/withdraw", post(api::withdraw_consent))
        .route(
            "/sessions",
            get(api::list_sessions).post(api::create_session),
        )
        .route("/sessions/{id}", get(api::get_session))
        .route("/sessions/{id}/links", post(api::issue_link))
        .route("/sessions/{id}/cancel", post(api::cancel_session))
        .route("/sessions/{id}/end", post(api::end_session))
        .route("/sessions/{id}/record", get(api::record))
        .route(
            "/sessions/{id}/report",
            get(records::http::get_report).post(records::http::write_report),
        )
        .route("/sessions/{id}/report.pdf", get(records::http::report_pdf))
        .route(
            "/sessions/{id}/invoice.pdf",
            get(records::http::invoice_pdf),
        )
        .route("/exports", get(records::http::export))
        .route("/share", get(records::http::share))
        .route(
            "/settings",
            get(records::http::get_settings).put(records::http::put_settings),
        )
        .route("/links/{jti}/revoke", post(api::revoke_link))
        .route("/join-info", post(api::join_info))
        .route("/join-price", post(api::join_price))
        .route("/join-price/accept", post(api::accept_join_price))
        .merge(reach_routes())
        .route("/embed/config", get(api::embed_config))
        .fallback(api::not_found);
    Router::new()
        .merge(platform::router(&state))
        .nest("/api", api)
        .route("/ws", get(ws::upgrade))
        .route("/.well-known/jwks.json", get(api::jwks))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .merge(web::routes())
        // Origin and CSRF token on state-changing dashboard requests (not `/api/v1`).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::csrf::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .with_state(state)
}

/// Reaching the patient (`crate::reach`): contact, send, messages, reminder offsets, move, and
/// the join page's code exchange.
fn reach_routes() -> Router<AppState> {
    use crate::reach::{codes, http};
    Router::new()
        .route(
            "/patients/{id}/contact",
            get(http::get_contact).put(http::put_contact),
        )
        .route("/sessions/{id}/send", post(http::send_link))
        .route("/sessions/{id}/messages", get(http::messages))
        .route("/sessions/{id}/move", post(http::move_session))
        .route("/reach", get(http::get_settings).put(http::put_settings))
        .route("/join-code", post(codes::exchange))
}

/// Security headers on every response, and a log line that names the route, never the URL.
async fn security_headers(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = req.method().clone();
    let is_api = req.uri().path().starts_with("/api/");
    let kine_page = matches!(req.uri().path(), "/app" | "/app/");
    // The embed script is loaded by platforms' pages, from their own origin.
    let corp = if req.uri().path() == "/embed.js" {
        "cross-origin"
    } else {
        "same-origin"
    };
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, app.headers.csp.clone());
    let permissions = if kine_page {
        &app.headers.permissions_kine
    } else {
        &app.headers.permissions
    };
    h.insert("permissions-policy", permissions.clone());
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static(corp),
    );
    if let Some(hsts) = &app.headers.hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    if is_api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    tracing::debug!(%method, route = route.as_deref().unwrap_or("-"), status = res.status().as_u16(), "http");
    res
}
