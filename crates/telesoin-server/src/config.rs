//! Configuration: one typed struct, read from an optional TOML file and then from `TELESOIN_*`
//! environment variables (the key in upper case: `grace_seconds` -> `TELESOIN_GRACE_SECONDS`;
//! lists are comma-separated). Validated at start with messages that say what to change.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use telesoin_core::admission::{InPersonRule, TerritoryCheck};

/// How the server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Use `tls_cert`/`tls_key` when both are set, else a self-signed certificate for localhost
    /// kept in the data directory.
    #[default]
    Auto,
    /// Plain HTTP, only behind a trusted TLS-terminating proxy.
    Off,
}

/// The default key-letter values (mainland France), by date of effect. AMK 2,15 EUR dates from
/// before the first télésoin act (its exact earlier history is not encoded); the 2024-02-22
/// lines are avenant 7's (ameli.fr, "entrée en vigueur de nouvelles mesures prévues à
/// l'avenant 7"; Cofidoc, NGAP kiné 2024: 2,21 EUR mainland).
pub const DEFAULT_KEY_LETTER_VALUES: &[&str] = &[
    "AMK:2.15:2012-01-01",
    "AMS:2.15:2012-01-01",
    "AMC:2.15:2012-01-01",
    "AMK:2.21:2024-02-22",
    "AMS:2.21:2024-02-22",
    "AMC:2.21:2024-02-22",
    "TMK:2.15:2024-02-22",
];

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, signing keys and generated certificate live. Default `./data`.
    pub data_dir: PathBuf,
    /// The database: `postgres://user:password@host:5432/db` to share one between nodes, or
    /// `sqlite:///path/to/file.db`. Default none: SQLite in `data_dir/telesoin.db`. May hold a
    /// password: never logged.
    pub database_url: Option<String>,
    /// The Redis shared by the nodes of a cluster (`redis://[:password@]host:6379[/db]`): signaling
    /// between nodes, rooms, seats and lobby visible to every node. Default none: a single node
    /// with the in-process bus. Every node of a cluster also shares `database_url` (Postgres), the
    /// join-token keys and `public_url`. May hold a password: never logged.
    pub redis_url: Option<String>,
    /// Address to listen on. Default `127.0.0.1:8443`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The public base URL (used in links and as the JWT issuer). Default `https://localhost:PORT`.
    pub public_url: Option<String>,
    /// `auto` (default) or `off` (plain HTTP behind a proxy).
    pub tls: TlsMode,
    /// PEM certificate chain; with `tls_key`, replaces the self-signed certificate.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Which prior in-person rule applies: `arrete_2021` (default) or `convention`.
    pub in_person_rule: InPersonRule,
    /// The convention's territory condition (the kiné practises in the patient's territory):
    /// `off`, or `departement` (the practice's département, set in the kiné's settings, is the
    /// patient's). When on, a télésoin session cannot be scheduled, nor a patient admitted,
    /// outside it (`out_of_territory`). Default `off`.
    pub territory_check: TerritoryCheck,
    /// Minutes before the start at which links open. Default 15.
    pub link_before_minutes: i64,
    /// Minutes after the start at which links close. Default 120.
    pub link_after_minutes: i64,
    /// Seconds a dropped participant keeps their seat. Default 30.
    pub grace_seconds: i64,
    /// Seconds between two media heartbeats of a client (`welcome.heartbeat_seconds`): the
    /// persisted evidence of an ongoing call; after a crash billing loses at most about one
    /// period. Default 10.
    pub heartbeat_seconds: i64,
    /// Bill the time kiné and patient were connected without video both ways (audio only).
    /// Default false: télésoin is a video act, audio-only time is shown, not billed.
    pub bill_audio_only: bool,
    /// Seconds without any message before a socket is closed (clients ping every 20 s). Default 60.
    pub idle_timeout_seconds: u64,
    /// Seconds a new socket has to send `join`. Default 10.
    pub join_timeout_seconds: u64,
    /// Largest signaling message in bytes; larger closes with 1009. Default 65536.
    pub max_message_bytes: usize,
    /// Messages per second allowed per socket (burst: 4x). Default 50.
    pub rate_per_second: u32,
    /// Joins a seat (or a link) may make at once, then `rejoins_per_minute`; past them a join
    /// is refused `rejoin_too_frequent` (issue 10: the per-socket rate limit does not bound a
    /// client that reconnects in a loop).
    pub rejoin_burst: u32,
    pub rejoins_per_minute: u32,
    /// Extra origins allowed to open the WebSocket (the public URL's origin always is).
    pub allowed_origins: Vec<String>,
    /// Origins allowed to embed the call (frame-ancestors, postMessage targets).
    pub embed_origins: Vec<String>,
    /// STUN URLs handed to clients in `welcome` (none by default: host candidates only).
    pub ice_urls: Vec<String>,
    /// coturn URLs (`turn:host:3478?transport=udp`, `turns:host:443?transport=tcp`), handed out
    /// with short-lived TURN REST credentials. Needs `turn_secret`.
    pub turn_urls: Vec<String>,
    /// The `static-auth-secret` shared with coturn (`use-auth-secret`). Never logged.
    pub turn_secret: Option<String>,
    /// Seconds between SIGTERM and closing the sockets, during which /readyz says `draining` and
    /// joins are refused with `shutting_down`, so that the load balancer stops routing here
    /// first. Then every client is told `shutting_down` (close 1001) and reconnects elsewhere.
    /// Default 2.
    pub drain_seconds: u64,
    /// Free space (MB) the data directory's filesystem must keep: below it `/readyz` answers 503
    /// (the disk fills before the database refuses a write). Also reported in `/metrics`.
    /// Default 100.
    pub min_free_disk_mb: u64,
    /// Hours a dashboard login lasts. Default 12.
    pub login_hours: i64,
    /// Values of the NGAP key letters (AMK, AMS, AMC, TMK), each `LETTER:EUROS:YYYY-MM-DD` (the
    /// date of effect); the latest one in effect on the session day prices it. A télésoin act is
    /// priced TMK from 2024-02-22 on, AMK before. Default [`DEFAULT_KEY_LETTER_VALUES`]: AMK, AMS,
    /// AMC 2,15 EUR, then 2,21 EUR from 2024-02-22 (mainland), TMK 2,15 EUR from 2024-02-22
    /// (avenant 7; sources in the README). Overseas values (2,36 -> 2,43 EUR) are set here.
    pub key_letter_values: Vec<String>,
    /// Years a patient's data is kept after the last care (CNIL referential 2020-081). Default 20.
    pub retention_years: u32,
    /// The convention's cap on the share of a kiné's sessions done remotely, in percent. Default 20.
    pub share_cap_percent: u32,
    /// Log filter (tracing EnvFilter syntax). Default `info`.
    pub log: String,
    /// `TELESOIN_*` variables that name no setting (a typo, or another tool's variable, or one
    /// a platform such as Kubernetes injects). They are ignored, and announced at start.
    #[serde(skip)]
    pub ignored_env: Vec<String>,
    /// Requests per second allowed per platform API key on `/api/v1`. Default 50: a platform
    /// scheduling one session at a time (a session and two links, three requests) makes about
    /// 1,000 a minute; with the bulk route (200 sessions and their links a request) the limit is
    /// not what bounds it.
    pub api_rate_per_second: u32,
    /// Burst allowed per API key above the steady rate. Default 200 (e.g. 40,000 sessions in
    /// bulk requests at once).
    pub api_burst: u32,
    /// Seconds before the first retry of a failed webhook delivery; doubles each time (at most
    /// one hour). Default 10.
    pub webhook_retry_seconds: u64,
    /// Hours during which a failed webhook delivery is retried before it is given up. Default 72.
    pub webhook_retry_hours: i64,
    /// Seconds a webhook receiver has to answer. Default 10.
    pub webhook_timeout_seconds: u64,
    /// Accept `http://` webhook URLs (tests, a receiver on a private network). Default false:
    /// `https://` only.
    pub webhook_allow_http: bool,
    /// Networks (CIDR, `10.0.0.0/8`, `::1/128`; a bare address is one host) where webhook
    /// receivers may live although they are private. Default none: webhook URLs that are or
    /// resolve to loopback, private (RFC 1918, unique-local), link-local, carrier-grade NAT,
    /// multicast, unspecified, documentation or cloud-metadata addresses are refused, at
    /// registration and at each connection.
    pub webhook_allowed_networks: Vec<String>,
    /// Consecutive failed logins that lock an account for `login_lockout_seconds` (the back-off
    /// before: 1 s, 2 s, 4 s...). A browser that logged into the account before is counted
    /// apart. Default 5.
    pub login_max_failures: u32,
    /// Failed logins from one client address (IPv6: its /64), across accounts, that lock it.
    /// Default 20.
    pub login_address_max_failures: u32,
    /// Seconds a lock lasts (short: an attacker must not keep a kiné out). Default 300.
    pub login_lockout_seconds: u64,
    /// Addresses of reverse proxies whose `X-Forwarded-For` names the client (its last entry
    /// not itself a trusted proxy), for login throttling by address. Default none: the TCP peer.
    pub trusted_proxies: Vec<String>,
    /// Seconds a write to a signaling socket may take (a client that stopped reading): then the
    /// socket is closed and the seat falls into its grace period. Default 10.
    pub ws_send_timeout_seconds: u64,
    /// The dashboard's e-mail + password login. Default true; false leaves the OpenID Connect
    /// login only (then `oidc_client_id` must be set).
    pub password_login: bool,
    /// The OpenID provider's issuer; its discovery document is
    /// `ISSUER/.well-known/openid-configuration`. Default Pro Santé Connect's production issuer,
    /// `https://auth.esante.gouv.fr/auth/realms/esante-wallet` (the test environment ("bac à
    /// sable") is `https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet`).
    pub oidc_issuer: String,
    /// The client id registered at the provider. Default none: no OpenID Connect login.
    pub oidc_client_id: Option<String>,
    /// The client secret (`client_secret_basic`). Never logged.
    pub oidc_client_secret: Option<String>,
    /// A PEM private key (RSA, or EC P-256) for `private_key_jwt` client authentication, used
    /// instead of the secret; its public half is registered at the provider. Default none.
    pub oidc_private_key: Option<PathBuf>,
    /// The `kid` under which that key is registered. Default none.
    pub oidc_private_key_id: Option<String>,
    /// Scopes asked. Default `openid,scope_all` (Pro Santé Connect's).
    pub oidc_scopes: Vec<String>,
    /// Authentication levels asked (`acr_values`) and accepted in the ID token's `acr`. Default
    /// `eidas1` (Pro Santé Connect: CPS card or e-CPS). Empty: neither asked nor checked.
    pub oidc_acr_values: Vec<String>,
    /// The userinfo claim holding the kiné's RPPS. Default `SubjectNameID` (Pro Santé Connect's
    /// national identifier, `8` + the RPPS; the leading 8 is dropped).
    pub oidc_rpps_claim: String,
    /// The provider's name on the login button. Default `Pro Santé Connect`.
    pub oidc_label: String,
    /// Seconds the provider has to answer. Default 10.
    pub oidc_timeout_seconds: u64,
    /// Accept an `http://` issuer (tests on loopback). Default false: `https://` only.
    pub oidc_allow_http: bool,
    /// The SMTP relay invitations and reminders are sent through (`smtp.example.fr`, or
    /// `host:port`). Default none: nothing is sent by e-mail and the dashboard says so.
    pub smtp_relay: Option<String>,
    /// `starttls` (default, port 587), `tls` (implicit TLS, port 465) or `none` (plain text, only
    /// to a loopback relay: tests, a local MTA).
    pub smtp_security: SmtpSecurity,
    /// A PEM file of CA certificates trusted for the relay's certificate, in addition to the
    /// public roots (webpki): a relay with a certificate from a private CA (a hospital's, a
    /// group practice's). Default none: the public roots only.
    pub smtp_ca_file: Option<PathBuf>,
    /// SMTP login and password, when the relay asks for them. The password is never logged.
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    /// The sender of the e-mails (`Cabinet Martin <rdv@cabinet.example.fr>`); needed with
    /// `smtp_relay`.
    pub smtp_from: Option<String>,
    /// The HTTP SMS gateway: invitations and reminders are POSTed there as JSON (see the README:
    /// `{"to", "text", "sender", "id"}`). Default none: nothing is sent by SMS.
    pub sms_gateway_url: Option<String>,
    /// The header that authenticates to the gateway. Default `Authorization`.
    pub sms_gateway_auth_header: String,
    /// Its value (`Bearer ...`, an API key). Never logged.
    pub sms_gateway_auth: Option<String>,
    /// The sender name shown on the phone (11 letters at most, as French operators require).
    /// Default `Telesoin`.
    pub sms_sender: String,
    /// Minutes before the start at which reminders go, comma-separated, when the kiné has not
    /// chosen. Default `1440,60` (the day before, one hour before).
    pub reminder_offsets_minutes: Vec<i64>,
    /// Seconds a worker holds a message it is sending; a node that dies mid-send loses it after
    /// this and another sends it. Longer than `message_timeout_seconds`. Default 60.
    pub message_lease_seconds: i64,
    /// Seconds the relay or gateway has to answer. Default 20.
    pub message_timeout_seconds: u64,
    /// Seconds before the first retry of a failed message; doubles each time (at most 30
    /// minutes apart). Default 30.
    pub message_retry_seconds: i64,
    /// Hours a failing message is retried before it is given up (a reminder also stops at the
    /// session's start). Default 12.
    pub message_retry_hours: i64,
}

/// How the SMTP client secures its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            database_url: None,
            redis_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            public_url: None,
            tls: TlsMode::Auto,
            tls_cert: None,
            tls_key: None,
            in_person_rule: InPersonRule::Arrete2021,
            territory_check: TerritoryCheck::Off,
            link_before_minutes: 15,
            link_after_minutes: 120,
            grace_seconds: 30,
            heartbeat_seconds: 10,
            bill_audio_only: false,
            idle_timeout_seconds: 60,
            join_timeout_seconds: 10,
            max_message_bytes: telesoin_proto::MAX_MESSAGE_BYTES,
            rate_per_second: 50,
            rejoin_burst: 10,
            rejoins_per_minute: 6,
            allowed_origins: Vec::new(),
            embed_origins: Vec::new(),
            ice_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: None,
            drain_seconds: 2,
            min_free_disk_mb: 100,
            login_hours: 12,
            key_letter_values: DEFAULT_KEY_LETTER_VALUES
                .iter()
                .map(|v| (*v).to_owned())
                .collect(),
            retention_years: telesoin_core::retention::DEFAULT_RETENTION_YEARS,
            share_cap_percent: telesoin_core::share::CONVENTION_SHARE_CAP_PERCENT,
            log: "info".into(),
            ignored_env: Vec::new(),
            api_rate_per_second: 50,
            api_burst: 200,
            webhook_retry_seconds: 10,
            webhook_retry_hours: 72,
            webhook_timeout_seconds: 10,
            webhook_allow_http: false,
            webhook_allowed_networks: Vec::new(),
            login_max_failures: 5,
            login_address_max_failures: 20,
            login_lockout_seconds: 300,
            trusted_proxies: Vec::new(),
            ws_send_timeout_seconds: 10,
            password_login: true,
            oidc_issuer: "https://auth.esante.gouv.fr/auth/realms/esante-wallet".into(),
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_private_key: None,
            oidc_private_key_id: None,
            oidc_scopes: vec!["openid".into(), "scope_all".into()],
            oidc_acr_values: vec!["eidas1".into()],
            oidc_rpps_claim: "SubjectNameID".into(),
            oidc_label: "Pro Santé Connect".into(),
            oidc_timeout_seconds: 10,
            oidc_allow_http: false,
            smtp_relay: None,
            smtp_security: SmtpSecurity::Starttls,
            smtp_ca_file: None,
            smtp_username: None,
            smtp_password: None,
            smtp_from: None,
            sms_gateway_url: None,
            sms_gateway_auth_header: "Authorization".into(),
            sms_gateway_auth: None,
            sms_sender: "Telesoin".into(),
            reminder_offsets_minutes: telesoin_core::reach::DEFAULT_REMINDER_MINUTES.to_vec(),
            message_lease_seconds: 60,
            message_timeout_seconds: 20,
            message_retry_seconds: 30,
            message_retry_hours: 12,
        }
    }
}

impl std::fmt::Debug for Config {
    // Secrets (the database URL's password, the TURN secret) never reach a debug print or a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("tls", &self.tls)
            .field("in_person_rule", &self.in_person_rule)
            .field("database", &self.database_url.as_ref().map(|_| "<set>"))
            .field("redis", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "<set>"))
            .field("oidc_issuer", &self.oidc_issuer)
            .field(
                "oidc_client_secret",
                &self.oidc_client_secret.as_ref().map(|_| "<set>"),
            )
            .field(
                "smtp_password",
                &self.smtp_password.as_ref().map(|_| "<set>"),
            )
            .field(
                "sms_gateway_auth",
                &self.sms_gateway_auth.as_ref().map(|_| "<set>"),
            )
            .finish_non_exhaustive()
    }
}

fn key_name(key: &str) -> String {
    format!("TELESOIN_{}", key.to_uppercase())
}

/// A configuration problem, said so that an operator knows what to change.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Defaults, then the file (if any), then `TELESOIN_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => Config::default(),
        };
        for (key, value) in env {
            let Some(name) = key.strip_prefix("TELESOIN_") else {
                continue;
            };
            let key = name.to_ascii_lowercase();
            if !cfg.knows(&key) {
                cfg.ignored_env.push(key_name(&key));
                continue;
            }
            cfg.set(&key, &value)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Whether `key` names a setting (a probe of [`Config::set`] on a scratch copy).
    pub fn knows(&self, key: &str) -> bool {
        let mut scratch = Config::default();
        match scratch.set(key, "") {
            Ok(()) => true,
            Err(e) => !e.0.starts_with("unknown setting"),
        }
    }

    /// Sets one key from its text form, as an environment variable gives it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(
            key: &str,
            value: &str,
            what: &str,
        ) -> Result<T, ConfigError> {
            value.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "TELESOIN_{} must be {what}, got {value:?}",
                    key.to_uppercase()
                ))
            })
        }
        let list = |v: &str| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        match key {
            "data_dir" => self.data_dir = PathBuf::from(value),
            "database_url" => {
                self.database_url = Some(value.trim().to_owned()).filter(|v| !v.is_empty())
            }
            "redis_url" => self.redis_url = Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
            "listen" => self.listen = parse(key, value, "an address such as 127.0.0.1:8443")?,
            "public_url" => self.public_url = Some(value.trim_end_matches('/').to_owned()),
            "tls" => {
                self.tls = match value {
                    "auto" => TlsMode::Auto,
                    "off" => TlsMode::Off,
                    _ => {
                        return Err(ConfigError(format!(
                            "TELESOIN_TLS must be auto or off, got {value:?}"
                        )));
                    }
                }
            }
            "tls_cert" => self.tls_cert = Some(PathBuf::from(value)),
            "tls_key" => self.tls_key = Some(PathBuf::from(value)),
            "territory_check" => {
                self.territory_check = TerritoryCheck::parse(value).ok_or_else(|| {
                    ConfigError(format!(
                        "TELESOIN_TERRITORY_CHECK must be off or departement, got {value:?}"
                    ))
                })?
            }
            "in_person_rule" => {
                self.in_person_rule = InPersonRule::parse(value).ok_or_else(|| {
                    ConfigError(format!(
                        "TELESOIN_IN_PERSON_RULE must be arrete_2021 or convention, got {value:?}"
                    ))
                })?
            }
            "link_before_minutes" => {
                self.link_before_minutes = parse(key, value, "a number of minutes")?
            }
            "link_after_minutes" => {
                self.link_after_minutes = parse(key, value, "a number of minutes")?
            }
            "grace_seconds" => self.grace_seconds = parse(key, value, "a number of seconds")?,
            "heartbeat_seconds" => {
                self.heartbeat_seconds = parse(key, value, "a number of seconds")?
            }
            "bill_audio_only" => self.bill_audio_only = parse(key, value, "true or false")?,
            "idle_timeout_seconds" => {
                self.idle_timeout_seconds = parse(key, value, "a number of seconds")?
            }
            "join_timeout_seconds" => {
                self.join_timeout_seconds = parse(key, value, "a number of seconds")?
            }
            "max_message_bytes" => self.max_message_bytes = parse(key, value, "a number of bytes")?,
            "rate_per_second" => self.rate_per_second = parse(key, value, "a number of messages")?,
            "rejoin_burst" => self.rejoin_burst = parse(key, value, "a number of joins")?,
            "rejoins_per_minute" => {
                self.rejoins_per_minute = parse(key, value, "a number of joins")?
            }
            "allowed_origins" => self.allowed_origins = list(value),
            "embed_origins" => self.embed_origins = list(value),
            "ice_urls" => self.ice_urls = list(value),
            "turn_urls" => self.turn_urls = list(value),
            "turn_secret" => self.turn_secret = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "drain_seconds" => self.drain_seconds = parse(key, value, "a number of seconds")?,
            "min_free_disk_mb" => {
                self.min_free_disk_mb = parse(key, value, "a number of megabytes")?
            }
            "login_hours" => self.login_hours = parse(key, value, "a number of hours")?,
            "key_letter_values" => self.key_letter_values = list(value),
            "retention_years" => self.retention_years = parse(key, value, "a number of years")?,
            "share_cap_percent" => self.share_cap_percent = parse(key, value, "a percentage")?,
            "log" => self.log = value.to_owned(),
            "api_rate_per_second" => {
                self.api_rate_per_second = parse(key, value, "a number of requests")?
            }
            "api_burst" => self.api_burst = parse(key, value, "a number of requests")?,
            "webhook_retry_seconds" => {
                self.webhook_retry_seconds = parse(key, value, "a number of seconds")?
            }
            "webhook_retry_hours" => {
                self.webhook_retry_hours = parse(key, value, "a number of hours")?
            }
            "webhook_timeout_seconds" => {
                self.webhook_timeout_seconds = parse(key, value, "a number of seconds")?
            }
            "webhook_allow_http" => self.webhook_allow_http = parse(key, value, "true or false")?,
            "webhook_allowed_networks" => self.webhook_allowed_networks = list(value),
            "login_max_failures" => {
                self.login_max_failures = parse(key, value, "a number of failures")?
            }
            "login_address_max_failures" => {
                self.login_address_max_failures = parse(key, value, "a number of failures")?
            }
            "login_lockout_seconds" => {
                self.login_lockout_seconds = parse(key, value, "a number of seconds")?
            }
            "trusted_proxies" => self.trusted_proxies = list(value),
            "ws_send_timeout_seconds" => {
                self.ws_send_timeout_seconds = parse(key, value, "a number of seconds")?
            }
            "password_login" => self.password_login = parse(key, value, "true or false")?,
            "oidc_issuer" => self.oidc_issuer = value.trim().trim_end_matches('/').to_owned(),
            "oidc_client_id" => {
                self.oidc_client_id = Some(value.trim().to_owned()).filter(|v| !v.is_empty())
            }
            "oidc_client_secret" => {
                self.oidc_client_secret = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "oidc_private_key" => {
                self.oidc_private_key = Some(PathBuf::from(value)).filter(|_| !value.is_empty())
            }
            "oidc_private_key_id" => {
                self.oidc_private_key_id = Some(value.trim().to_owned()).filter(|v| !v.is_empty())
            }
            "oidc_scopes" => self.oidc_scopes = list(value),
            "oidc_acr_values" => self.oidc_acr_values = list(value),
            "oidc_rpps_claim" => self.oidc_rpps_claim = value.trim().to_owned(),
            "oidc_label" => self.oidc_label = value.trim().to_owned(),
            "oidc_timeout_seconds" => {
                self.oidc_timeout_seconds = parse(key, value, "a number of seconds")?
            }
            "oidc_allow_http" => self.oidc_allow_http = parse(key, value, "true or false")?,
            "smtp_relay" => self.smtp_relay = Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
            "smtp_security" => {
                self.smtp_security = match value.trim() {
                    "starttls" => SmtpSecurity::Starttls,
                    "tls" => SmtpSecurity::Tls,
                    "none" => SmtpSecurity::None,
                    _ => {
                        return Err(ConfigError(format!(
                            "TELESOIN_SMTP_SECURITY must be starttls, tls or none, got {value:?}"
                        )));
                    }
                }
            }
            "smtp_ca_file" => {
                self.smtp_ca_file = Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty())
            }
            "smtp_username" => {
                self.smtp_username = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "smtp_password" => {
                self.smtp_password = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "smtp_from" => self.smtp_from = Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
            "sms_gateway_url" => {
                self.sms_gateway_url = Some(value.trim().to_owned()).filter(|v| !v.is_empty())
            }
            "sms_gateway_auth_header" => self.sms_gateway_auth_header = value.trim().to_owned(),
            "sms_gateway_auth" => {
                self.sms_gateway_auth = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "sms_sender" => self.sms_sender = value.trim().to_owned(),
            "reminder_offsets_minutes" => {
                self.reminder_offsets_minutes = telesoin_core::reach::parse_offsets(value)
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "TELESOIN_REMINDER_OFFSETS_MINUTES must be minutes before the start, comma-separated (1440,60), each 1 to 43200, at most 5; got {value:?}"
                        ))
                    })?
            }
            "message_lease_seconds" => {
                self.message_lease_seconds = parse(key, value, "a number of seconds")?
            }
            "message_timeout_seconds" => {
                self.message_timeout_seconds = parse(key, value, "a number of seconds")?
            }
            "message_retry_seconds" => {
                self.message_retry_seconds = parse(key, value, "a number of seconds")?
            }
            "message_retry_hours" => {
                self.message_retry_hours = parse(key, value, "a number of hours")?
            }
            // Variables for other parts of the program (the demo password, the config path).
            "demo_password" | "new_password" | "config" => {}
            other => {
                return Err(ConfigError(format!(
                    "unknown setting TELESOIN_{}; see docs/configuration in README.md",
                    other.to_uppercase()
                )));
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Err(bad) = crate::egress::Networks::parse(&self.webhook_allowed_networks) {
            return Err(ConfigError(format!(
                "webhook_allowed_networks: {bad:?} is not a network such as 10.0.0.0/8 or fd00::/8"
            )));
        }
        if let Some(bad) = self
            .trusted_proxies
            .iter()
            .find(|p| p.parse::<std::net::IpAddr>().is_err())
        {
            return Err(ConfigError(format!(
                "trusted_proxies: {bad:?} is not an IP address"
            )));
        }
        if self.login_max_failures < 2
            || self.login_address_max_failures < 2
            || !(1..=3600).contains(&self.login_lockout_seconds)
        {
            return Err(ConfigError(
                "login_max_failures and login_address_max_failures must be at least 2, login_lockout_seconds between 1 and 3600".into(),
            ));
        }
        if !(1..=300).contains(&self.ws_send_timeout_seconds) {
            return Err(ConfigError(
                "ws_send_timeout_seconds must be between 1 and 300".into(),
            ));
        }
        if let Some(url) = &self.database_url
            && telesoin_store::Backend::from_url(url).is_none()
        {
            // Not the URL itself: it may hold a password.
            return Err(ConfigError(
                "database_url must start with postgres:// or sqlite:// (or be unset for SQLite in data_dir)".into(),
            ));
        }
        if let Some(url) = &self.redis_url
            && !url.starts_with("redis://")
        {
            // Not the URL itself: it may hold a password. (No TLS client is built in: reach a
            // remote Redis through a private network or a TLS tunnel.)
            return Err(ConfigError(
                "redis_url must start with redis:// (or be unset for a single node)".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError("set both tls_cert and tls_key, or neither (a self-signed certificate is then generated)".into()));
        }
        if self.link_before_minutes < 0 || self.link_after_minutes <= 0 {
            return Err(ConfigError(
                "link_before_minutes must be >= 0 and link_after_minutes > 0".into(),
            ));
        }
        if !(1..=600).contains(&self.grace_seconds) {
            return Err(ConfigError(
                "grace_seconds must be between 1 and 600".into(),
            ));
        }
        if !(2..=120).contains(&self.heartbeat_seconds) {
            return Err(ConfigError(
                "heartbeat_seconds must be between 2 and 120".into(),
            ));
        }
        if self.idle_timeout_seconds < 5 || self.join_timeout_seconds == 0 {
            return Err(ConfigError(
                "idle_timeout_seconds must be at least 5 and join_timeout_seconds at least 1"
                    .into(),
            ));
        }
        if !(1024..=1024 * 1024).contains(&self.max_message_bytes) {
            return Err(ConfigError(
                "max_message_bytes must be between 1024 and 1048576".into(),
            ));
        }
        for v in &self.key_letter_values {
            if crate::records::parse_key_letter_value(v).is_none() {
                return Err(ConfigError(format!(
                    "key_letter_values entry {v:?} must look like AMK:2.15:2019-07-01 (letter, euros, date of effect)"
                )));
            }
        }
        if !(1..=100).contains(&self.retention_years) || self.share_cap_percent > 100 {
            return Err(ConfigError(
                "retention_years must be 1 to 100 and share_cap_percent 0 to 100".into(),
            ));
        }
        if self.api_rate_per_second == 0 || self.api_burst == 0 {
            return Err(ConfigError(
                "api_rate_per_second and api_burst must be at least 1".into(),
            ));
        }
        if self.webhook_retry_seconds == 0
            || !(1..=24 * 30).contains(&self.webhook_retry_hours)
            || !(1..=120).contains(&self.webhook_timeout_seconds)
        {
            return Err(ConfigError(
                "webhook_retry_seconds must be at least 1, webhook_retry_hours between 1 and 720, webhook_timeout_seconds between 1 and 120".into(),
            ));
        }
        self.validate_reach()?;
        if self.drain_seconds > 300 {
            return Err(ConfigError("drain_seconds must be at most 300".into()));
        }
        if self.rejoin_burst == 0 || self.rejoins_per_minute == 0 {
            return Err(ConfigError(
                "rejoin_burst and rejoins_per_minute must be at least 1".into(),
            ));
        }
        if self.rate_per_second == 0 {
            return Err(ConfigError("rate_per_second must be at least 1".into()));
        }
        for o in self.allowed_origins.iter().chain(&self.embed_origins) {
            if !(o.starts_with("https://") || o.starts_with("http://")) || o.ends_with('/') {
                return Err(ConfigError(format!(
                    "origin {o:?} must look like https://host[:port], without a trailing slash"
                )));
            }
        }
        if !self.turn_urls.is_empty() && self.turn_secret.is_none() {
            return Err(ConfigError(
                "turn_urls needs turn_secret (coturn's static-auth-secret)".into(),
            ));
        }
        for u in &self.turn_urls {
            if !(u.starts_with("turn:") || u.starts_with("turns:")) {
                return Err(ConfigError(format!(
                    "turn URL {u:?} must start with turn: or turns:"
                )));
            }
        }
        for u in &self.ice_urls {
            if !u.starts_with("stun:") && !u.starts_with("stuns:") {
                return Err(ConfigError(format!(
                    "ice_urls entry {u:?} must start with stun: (TURN goes in turn_urls)"
                )));
            }
        }
        self.validate_oidc()?;
        if let Some(u) = &self.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(ConfigError(format!(
                "public_url {u:?} must start with https:// or http://"
            )));
        }
        Ok(())
    }

    fn validate_oidc(&self) -> Result<(), ConfigError> {
        if !self.password_login && self.oidc_client_id.is_none() {
            return Err(ConfigError(
                "password_login = false needs the OpenID Connect login: set oidc_client_id (and oidc_client_secret or oidc_private_key)".into(),
            ));
        }
        if self.oidc_client_id.is_none() {
            return Ok(());
        }
        if self.oidc_client_secret.is_none() && self.oidc_private_key.is_none() {
            return Err(ConfigError(
                "oidc_client_id needs oidc_client_secret or oidc_private_key (private_key_jwt)"
                    .into(),
            ));
        }
        let https = self.oidc_issuer.starts_with("https://");
        if !(https || (self.oidc_allow_http && self.oidc_issuer.starts_with("http://"))) {
            return Err(ConfigError(format!(
                "oidc_issuer {:?} must start with https:// (http:// only with oidc_allow_http)",
                self.oidc_issuer
            )));
        }
        if !self.oidc_scopes.iter().any(|s| s == "openid") {
            return Err(ConfigError("oidc_scopes must include openid".into()));
        }
        if self.oidc_rpps_claim.is_empty() || self.oidc_label.is_empty() {
            return Err(ConfigError(
                "oidc_rpps_claim and oidc_label must not be empty".into(),
            ));
        }
        if !(1..=120).contains(&self.oidc_timeout_seconds) {
            return Err(ConfigError(
                "oidc_timeout_seconds must be between 1 and 120".into(),
            ));
        }
        Ok(())
    }

    /// The settings of e-mail, SMS and reminders.
    fn validate_reach(&self) -> Result<(), ConfigError> {
        if let Some(relay) = &self.smtp_relay {
            if self.smtp_from.is_none() {
                return Err(ConfigError(
                    "smtp_relay needs smtp_from (the sender, `Cabinet <rdv@example.fr>`)".into(),
                ));
            }
            let host = relay.rsplit_once(':').map_or(relay.as_str(), |(h, _)| h);
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if self.smtp_security == SmtpSecurity::None && !loopback {
                return Err(ConfigError(
                    "smtp_security = none sends in clear text: only to a loopback relay (127.0.0.1, localhost); use starttls or tls".into(),
                ));
            }
            if let Some(path) = &self.smtp_ca_file {
                if self.smtp_security == SmtpSecurity::None {
                    return Err(ConfigError(
                        "smtp_ca_file is for a TLS relay: set smtp_security to starttls or tls"
                            .into(),
                    ));
                }
                let pem = std::fs::read(path)
                    .map_err(|e| ConfigError(format!("smtp_ca_file {}: {e}", path.display())))?;
                let certs = rustls_pemfile::certs(&mut pem.as_slice())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ConfigError(format!("smtp_ca_file {}: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(ConfigError(format!(
                        "smtp_ca_file {} holds no PEM certificate",
                        path.display()
                    )));
                }
            }
            if self.smtp_username.is_some() != self.smtp_password.is_some() {
                return Err(ConfigError(
                    "set both smtp_username and smtp_password, or neither".into(),
                ));
            }
        }
        if let Some(url) = &self.sms_gateway_url
            && !(url.starts_with("https://")
                || url.starts_with("http://127.0.0.1")
                || url.starts_with("http://localhost"))
        {
            return Err(ConfigError(
                "sms_gateway_url must be an https:// URL (plain http only to a loopback address)"
                    .into(),
            ));
        }
        if self.sms_sender.is_empty()
            || self.sms_sender.chars().count() > 11
            || !self.sms_sender.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(ConfigError(
                "sms_sender must be 1 to 11 letters or digits".into(),
            ));
        }
        if self.sms_gateway_auth_header.is_empty()
            || axum::http::HeaderName::from_bytes(self.sms_gateway_auth_header.as_bytes()).is_err()
        {
            return Err(ConfigError(
                "sms_gateway_auth_header must be a header name (Authorization, X-Api-Key)".into(),
            ));
        }
        if self.message_timeout_seconds == 0
            || self.message_lease_seconds <= self.message_timeout_seconds as i64
            || self.message_retry_seconds < 1
            || !(1..=72).contains(&self.message_retry_hours)
        {
            return Err(ConfigError(
                "message_timeout_seconds must be at least 1 and below message_lease_seconds; message_retry_seconds at least 1; message_retry_hours 1 to 72".into(),
            ));
        }
        Ok(())
    }

    /// The public base URL once the real port is known.
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.clone(),
            None => {
                let scheme = if self.tls == TlsMode::Off {
                    "http"
                } else {
                    "https"
                };
                format!("{scheme}://localhost:{}", bound.port())
            }
        }
    }

    /// The key-letter values, parsed (validated at load).
    pub fn key_letter_schedule(&self) -> Vec<telesoin_core::tariff::KeyLetterValue> {
        self.key_letter_values
            .iter()
            .filter_map(|v| crate::records::parse_key_letter_value(v))
            .collect()
    }

    pub fn window(&self) -> telesoin_core::model::Window {
        telesoin_core::model::Window {
            before: chrono::Duration::minutes(self.link_before_minutes),
            after: chrono::Duration::minutes(self.link_after_minutes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_overrides_and_validation_messages() {
        let cfg = Config::load(
            None,
            env(&[
                ("TELESOIN_GRACE_SECONDS", "12"),
                ("TELESOIN_EMBED_ORIGINS", "https://a.fr, https://b.fr"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("valid");
        assert_eq!(cfg.grace_seconds, 12);
        assert_eq!(cfg.embed_origins, ["https://a.fr", "https://b.fr"]);
        let err =
            Config::load(None, env(&[("TELESOIN_GRACE_SECONDS", "soon")])).expect_err("invalid");
        assert!(
            err.to_string()
                .contains("TELESOIN_GRACE_SECONDS must be a number of seconds"),
            "{err}"
        );
        let err =
            Config::load(None, env(&[("TELESOIN_IN_PERSON_RULE", "maybe")])).expect_err("invalid");
        assert!(
            err.to_string().contains("arrete_2021 or convention"),
            "{err}"
        );
        let err = Config::load(None, env(&[("TELESOIN_TLS_CERT", "/x.pem")])).expect_err("invalid");
        assert!(
            err.to_string().contains("both tls_cert and tls_key"),
            "{err}"
        );
        let cfg = Config::load(
            None,
            env(&[("TELESOIN_DATABASE_URL", "postgres://u:p@db:5432/telesoin")]),
        )
        .expect("valid");
        assert_eq!(
            cfg.database_url.as_deref(),
            Some("postgres://u:p@db:5432/telesoin")
        );
        let err = Config::load(
            None,
            env(&[("TELESOIN_DATABASE_URL", "mysql://u:hunter2@db/t")]),
        )
        .expect_err("invalid");
        assert!(
            err.to_string().contains("postgres:// or sqlite://")
                && !err.to_string().contains("hunter2"),
            "{err}"
        );
        let secret = Config::load(
            None,
            env(&[
                ("TELESOIN_TURN_URLS", "turn:127.0.0.1:3478"),
                ("TELESOIN_TURN_SECRET", "s3cr3t"),
            ]),
        )
        .expect("valid");
        assert!(
            !format!("{secret:?}").contains("s3cr3t"),
            "secrets stay out of debug prints"
        );
        let err = Config::load(None, env(&[("TELESOIN_TURN_URLS", "turn:127.0.0.1:3478")]))
            .expect_err("no secret");
        assert!(err.to_string().contains("turn_secret"), "{err}");
        let cfg = Config::load(
            None,
            env(&[("TELESOIN_NOPE", "1"), ("TELESOIN_GRACE_SECONDS", "9")]),
        )
        .expect("an unknown variable is not fatal");
        assert_eq!(
            (cfg.ignored_env.as_slice(), cfg.grace_seconds),
            (&["TELESOIN_NOPE".to_owned()][..], 9),
            "it is ignored and reported"
        );
        let cfg = Config::load(
            None,
            env(&[("TELESOIN_REDIS_URL", "redis://:pw@10.0.0.5:6379/2")]),
        )
        .expect("valid");
        assert_eq!(
            cfg.redis_url.as_deref(),
            Some("redis://:pw@10.0.0.5:6379/2")
        );
        assert!(
            !format!("{cfg:?}").contains("pw@"),
            "redis password not in debug prints"
        );
        let err = Config::load(
            None,
            env(&[("TELESOIN_REDIS_URL", "rediss://:hunter2@r:6380")]),
        )
        .expect_err("invalid");
        assert!(
            err.to_string().contains("redis://") && !err.to_string().contains("hunter2"),
            "{err}"
        );
        assert!(Config::default().knows("turn_secret") && !Config::default().knows("grace_second"));
        let err = Config::load(None, env(&[("TELESOIN_PASSWORD_LOGIN", "false")]))
            .expect_err("no login left");
        assert!(err.to_string().contains("oidc_client_id"), "{err}");
        let err = Config::load(None, env(&[("TELESOIN_OIDC_CLIENT_ID", "telesoin")]))
            .expect_err("no client authentication");
        assert!(err.to_string().contains("oidc_client_secret"), "{err}");
        let cfg = Config::load(
            None,
            env(&[
                ("TELESOIN_OIDC_CLIENT_ID", "telesoin"),
                ("TELESOIN_OIDC_CLIENT_SECRET", "psc-s3cr3t"),
                ("TELESOIN_PASSWORD_LOGIN", "false"),
            ]),
        )
        .expect("Pro Santé Connect by default");
        assert_eq!(
            (
                cfg.oidc_issuer.as_str(),
                cfg.oidc_scopes.join(" "),
                cfg.oidc_acr_values.join(" ")
            ),
            (
                "https://auth.esante.gouv.fr/auth/realms/esante-wallet",
                "openid scope_all".to_owned(),
                "eidas1".to_owned()
            )
        );
        assert!(!format!("{cfg:?}").contains("psc-s3cr3t"));
        let err = Config::load(
            None,
            env(&[
                ("TELESOIN_OIDC_CLIENT_ID", "telesoin"),
                ("TELESOIN_OIDC_CLIENT_SECRET", "s"),
                ("TELESOIN_OIDC_ISSUER", "http://127.0.0.1:9000"),
            ]),
        )
        .expect_err("http issuer");
        assert!(err.to_string().contains("oidc_allow_http"), "{err}");
    }

    #[test]
    fn smtp_ca_file_is_checked_at_start() {
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let ca = dir.path().join("ca.pem");
        let cert =
            rcgen::generate_simple_self_signed(vec!["relay.example".to_owned()]).expect("cert");
        std::fs::write(&ca, cert.cert.pem()).expect("write");
        let with = |file: &Path, security: &str| {
            Config::load(
                None,
                env(&[
                    ("TELESOIN_SMTP_RELAY", "relay.example:587"),
                    ("TELESOIN_SMTP_FROM", "rdv@cabinet.example.fr"),
                    ("TELESOIN_SMTP_SECURITY", security),
                    ("TELESOIN_SMTP_CA_FILE", &file.display().to_string()),
                ]),
            )
        };
        let cfg = with(&ca, "starttls").expect("a PEM CA");
        assert_eq!(cfg.smtp_ca_file.as_deref(), Some(ca.as_path()));
        let err = with(&empty, "tls").expect_err("no certificate");
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
        let err = with(&dir.path().join("missing.pem"), "tls").expect_err("missing");
        assert!(err.to_string().contains("smtp_ca_file"), "{err}");
        let err = Config::load(
            None,
            env(&[
                ("TELESOIN_SMTP_RELAY", "127.0.0.1:2525"),
                ("TELESOIN_SMTP_FROM", "rdv@cabinet.example.fr"),
                ("TELESOIN_SMTP_SECURITY", "none"),
                ("TELESOIN_SMTP_CA_FILE", &ca.display().to_string()),
            ]),
        )
        .expect_err("clear text");
        assert!(err.to_string().contains("starttls or tls"), "{err}");
    }
}
