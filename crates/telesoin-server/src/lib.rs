//! telesoin-server: the axum application behind the `telesoin` binary.
//!
//! Concepts, one module each:
//! - [`config`]: the one typed configuration (file + `TELESOIN_*`), validated at start.
//! - [`app`]: shared state and the router; security headers on every response.
//! - [`auth`]: kiné login (argon2id) and the dashboard cookie.
//! - [`api`]: the REST API, JWKS and health probes.
//! - [`oidc`]: OpenID Connect login for kinés (Pro Santé Connect by default): discovery, PKCE,
//!   the ID token's checks against the provider's JWKS, the RPPS match, logout at the provider.
//! - [`patient_ins`]: the patient's INS at the HTTP edge (checked by the core), and what
//!   documents may carry of it.
//! - [`keys`]: Ed25519 join-token keys and JWT signing/verification.
//! - [`events`]: domain events (audit trail, webhooks) and their listeners.
//! - [`hub`]: rooms, seats, admission (asked of telesoin-core), relay, the session record.
//! - [`health`]: whether the store takes writes and the data directory has room (readiness).
//! - [`rooms`]: where the hub's rooms live: this process, or Redis shared by a cluster.
//! - [`ws`]: one task per WebSocket, token in the first message, limits; our own RFC 6455
//!   layer (the upgrade, then frames over hyper's upgraded stream) that keeps no buffer while idle.
//! - [`web`]: the embedded web client.
//! - [`tls`], [`server`]: rustls (ring) and the accept loop with graceful shutdown.
//! - [`turn`]: short-lived coturn credentials (TURN REST scheme) for `welcome.ice_servers`.
//! - [`records`]: the class fixed at finalization, compte rendu, audit trail, exports (CSV,
//!   FHIR, PDF), télésoin share, retention.
//! - [`platform`]: the platform API (`/api/v1`, API keys, OpenAPI), platform-minted join tokens
//!   and signed webhooks.
//! - [`reach`]: reaching the patient: contact details, the short link code, invitations by
//!   e-mail and SMS, reminders and notices through a durable outbox.
//! - [`demo`]: demo data for `telesoin demo`.
//!
//! This crate never writes a legal or billing rule (it asks `telesoin-core`), never logs a token,
//! SDP or personal data, and never relays anything for a participant who is not admitted.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod csrf;
pub mod demo;
pub mod egress;
pub mod error;
pub mod events;
pub mod health;
pub mod hub;
pub mod keys;
pub mod oidc;
pub mod patient_ins;
pub mod platform;
pub mod reach;
pub mod records;
pub mod rooms;
pub mod server;
pub mod throttle;
pub mod tls;
pub mod turn;
pub mod web;
pub mod ws;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use chrono::{Duration, Utc};
use telesoin_bus::{Bus, LocalBus, RedisBus, SharedState};
use telesoin_store::SqlStore;
use tokio::net::TcpListener;

pub use app::AppState;
pub use config::Config;

/// A server ready to serve: state built, listener bound.
pub struct Prepared {
    pub state: AppState,
    pub listener: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub cert: Option<tls::CertSource>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The store `database_url` names (SQLite in `data_dir/telesoin.db` when unset), migrated.
pub async fn open_store(cfg: &Config) -> anyhow::Result<SqlStore> {
    let store = match &cfg.database_url {
        Some(url) => SqlStore::connect(url).await,
        None => SqlStore::open_sqlite(&cfg.data_dir.join("telesoin.db")).await,
    };
    store.context("opening the database")
}

/// Opens the store, loads keys and certificate, binds the listener and recovers live sessions.
pub async fn prepare(cfg: Config) -> anyhow::Result<Prepared> {
    tls::install_ring();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data_dir {}", cfg.data_dir.display()))?;
    let store = open_store(&cfg).await?;
    let keys = keys::Keys::load_or_create(&cfg.data_dir.join("keys"))
        .context("loading join-token keys")?;
    let (tls, cert) = match cfg.tls {
        config::TlsMode::Off => (None, None),
        config::TlsMode::Auto => {
            let (c, source) = tls::server_config(
                cfg.tls_cert.as_deref(),
                cfg.tls_key.as_deref(),
                &cfg.data_dir,
            )?;
            (Some(c), Some(source))
        }
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let public_url = cfg.public_url_for(listener.local_addr()?);
    let ice = turn::IceConfig {
        stun_urls: cfg.ice_urls.clone(),
        turn_urls: cfg.turn_urls.clone(),
        turn_secret: cfg.turn_secret.clone(),
    };
    let store: Arc<dyn telesoin_store::Store> = Arc::new(store);
    let events = events::Events::new();
    // Every security event goes to the hash-chained audit trail.
    events.listen(records::audit::AuditTrail::new(store.clone()));
    // Platforms' webhooks: made by the change, written in its transaction.
    let single_node = cfg.redis_url.is_none();
    let webhooks = platform::webhooks::Announcer::new(store.clone(), single_node);
    let hub_cfg = hub::HubConfig {
        grace: Duration::seconds(cfg.grace_seconds),
        billing: telesoin_core::billing::Policy::new(
            Duration::seconds(cfg.grace_seconds),
            Duration::seconds(cfg.heartbeat_seconds),
            cfg.bill_audio_only,
        ),
        heartbeat: Duration::seconds(cfg.heartbeat_seconds),
        in_person_rule: cfg.in_person_rule,
        rejoin: hub::RejoinPolicy {
            burst: cfg.rejoin_burst,
            per_minute: cfg.rejoins_per_minute,
        },
        ice,
        health: Arc::new(health::Health::new(
            cfg.data_dir.clone(),
            cfg.min_free_disk_mb.saturating_mul(1_000_000),
        )),
        webhooks,
    };
    hub_cfg.health.check_disk();
    // One node with the in-process bus, or a cluster node on Redis: chosen here, once.
    let hub = match &cfg.redis_url {
        None => hub::Hub::new(store.clone(), Arc::new(LocalBus::new()), hub_cfg, events),
        Some(url) => {
            // A random id per process: a restarted node is a new node (its old seats are taken
            // over as from a lost node).
            let node = rand::random::<u64>();
            let bus = RedisBus::start(url, node).map_err(|e| anyhow::anyhow!("redis_url: {e}"))?;
            tracing::info!(
                node,
                "cluster node: rooms and signaling shared through Redis"
            );
            let shared: Arc<dyn SharedState> = bus.clone();
            let bus: Arc<dyn Bus> = bus;
            hub::Hub::clustered(store.clone(), bus, shared, hub_cfg, events)
        }
    };
    let recovered = hub
        .recover(Utc::now())
        .await
        .map_err(|c| anyhow::anyhow!("recovery failed: {}", c.code()))?;
    if recovered > 0 {
        tracing::info!(
            sessions = recovered,
            "recovered live sessions after a restart"
        );
    }
    let state = AppState::new(Arc::new(cfg), store, Arc::new(keys), hub, public_url)?;
    Ok(Prepared {
        state,
        listener,
        tls,
        cert,
    })
}

/// Serves until `shutdown` resolves; also runs the end-of-window sweep.
pub async fn run(prepared: Prepared, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let Prepared {
        state,
        listener,
        tls,
        ..
    } = prepared;
    let hub = state.hub.clone();
    let sweeper = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                tick.tick().await;
                if let Err(code) = hub.sweep(Utc::now()).await {
                    tracing::warn!(code = code.code(), "sweep failed");
                }
            }
        })
    };
    let checker = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                tick.tick().await;
                hub.check_store(Utc::now()).await;
                hub.check_shared_state(Utc::now()).await;
            }
        })
    };
    let webhooks = platform::webhooks::spawn_worker(state.clone());
    let messages = reach::outbox::spawn_worker(state.clone());
    let notice = std::time::Duration::from_secs(state.cfg.drain_seconds);
    let events = hub.events().clone();
    let result = server::serve(listener, app::router(state), tls, hub, shutdown, notice).await;
    // The sockets are gone; what they emitted without waiting (admissions' audit rows) is
    // committed before the process exits.
    events.flush().await;
    sweeper.abort();
    checker.abort();
    webhooks.abort();
    messages.abort();
    result
}
