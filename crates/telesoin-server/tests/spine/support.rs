//! Test support: a real server on port 0 with a temporary SQLite file, a REST client logged in
//! as a kiné, and raw WebSocket clients speaking the protocol.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use telesoin_core::KineId;
use telesoin_core::model::Kine;
use telesoin_proto::signal::ServerMsg;
use telesoin_server::{AppState, Config};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Server {
    pub state: AppState,
    pub port: u16,
    pub base: String,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            grace_seconds: 3,
            // Tests stop servers at once; the drain notice has its own test (cluster.rs).
            drain_seconds: 0,
            ..Config::default()
        };
        tweak(&mut cfg);
        let prepared = telesoin_server::prepare(cfg).await.expect("prepare");
        let state = prepared.state.clone();
        let port = prepared.listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(telesoin_server::run(prepared, async move {
            let _ = rx.await;
        }));
        Server {
            base: state.public_url.to_string(),
            state,
            port,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server gracefully; its data directory lives on with the returned guard.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.dir
    }

    /// A kiné account and a logged-in REST client.
    pub async fn kine(&self, email: &str) -> Api {
        let kine = Kine {
            id: KineId(Uuid::new_v4()),
            rpps: format!("1000{:07}", rand_digits()),
            name: "Claire Martin".into(),
            email: email.into(),
        };
        let hash = telesoin_server::auth::hash_password(PASSWORD).expect("hash");
        self.state
            .store
            .create_kine(&kine, &hash, Utc::now())
            .await
            .expect("kine");
        let api = Api {
            http: http(),
            base: self.base.clone(),
            cookie: String::new(),
        };
        api.login(email).await
    }
}

/// Session cookie -> CSRF token, for every client logged in by this test process.
fn csrf_tokens() -> &'static parking_lot::Mutex<std::collections::HashMap<String, String>> {
    static TOKENS: std::sync::OnceLock<
        parking_lot::Mutex<std::collections::HashMap<String, String>>,
    > = std::sync::OnceLock::new();
    TOKENS.get_or_init(Default::default)
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &str) -> String {
    telesoin_server::app::origin_of(url)
}

fn rand_digits() -> u32 {
    Uuid::new_v4().as_u128() as u32 % 10_000_000
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        // The test server's certificate is self-signed for localhost, on loopback only.
        .danger_accept_invalid_certs(true)
        .resolve("localhost", "127.0.0.1:0".parse().expect("addr"))
        .build()
        .expect("client")
}

#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
}

impl Api {
    pub async fn login(mut self, email: &str) -> Api {
        let res = self
            .http
            .post(format!("{}/api/login", self.base))
            .header("origin", origin_of(&self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 200, "login");
        let set: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        let session = set
            .iter()
            .find(|c| c.starts_with("telesoin_session="))
            .expect("session cookie");
        assert!(
            session.contains("HttpOnly")
                && session.contains("Secure")
                && session.contains("SameSite=Strict"),
            "{session}"
        );
        let token = res
            .headers()
            .get("x-csrf-token")
            .expect("the login hands over the CSRF token")
            .to_str()
            .expect("ascii")
            .to_owned();
        self.cookie = session.split(';').next().expect("pair").to_owned();
        // Kept in memory, as the dashboard's script does, and echoed by `call`.
        csrf_tokens().lock().insert(self.cookie.clone(), token);
        self
    }

    /// Takes the CSRF token of a session opened elsewhere (an OpenID login) from `/api/me`,
    /// as the dashboard does after a reload.
    pub async fn adopt_csrf(self) -> Api {
        let res = self
            .http
            .get(format!("{}/api/me", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("me");
        let token = res
            .headers()
            .get("x-csrf-token")
            .expect("/api/me hands over the CSRF token")
            .to_str()
            .expect("ascii")
            .to_owned();
        csrf_tokens().lock().insert(self.cookie.clone(), token);
        self
    }

    /// The CSRF token of this client's session (empty when logged out).
    pub fn csrf(&self) -> String {
        csrf_tokens()
            .lock()
            .get(&self.cookie)
            .cloned()
            .unwrap_or_default()
    }

    /// The origin of the server, as a browser on its pages sends it.
    pub fn origin(&self) -> String {
        origin_of(&self.base)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("origin", self.origin())
            .header("x-csrf-token", self.csrf());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {v}");
        v
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// A patient with the given birth date and visits; consent recorded by the kiné if asked.
    pub async fn patient(
        &self,
        birth: &str,
        loss_of_autonomy: bool,
        visits: &[(&str, &str)],
        consent: bool,
    ) -> Uuid {
        let p = self.post("/api/patients", json!({"display_name": "Mme Dupont", "birth_date": birth, "loss_of_autonomy": loss_of_autonomy})).await;
        let id: Uuid = serde_json::from_value(p["id"].clone()).expect("id");
        for (date, kind) in visits {
            self.post(
                &format!("/api/patients/{id}/visits"),
                json!({"date": date, "kind": kind}),
            )
            .await;
        }
        if consent {
            let born = chrono::NaiveDate::parse_from_str(birth, "%Y-%m-%d").expect("birth date");
            let today = telesoin_core::model::local_date(Utc::now());
            let mut body = json!({"text_version": telesoin_core::model::CONSENT_TEXT_VERSION, "method": "oral"});
            // A minor's consent is the legal representative's, named.
            if telesoin_core::model::age_on(born, today) < 18 {
                body["representative_name"] = json!("Sophie Dupont");
                body["representative_relation"] = json!("mère");
            }
            self.post(&format!("/api/patients/{id}/consents"), body)
                .await;
        }
        id
    }

    /// The usual patient: adult, bilan a month ago, consent recorded.
    pub async fn ready_patient(&self) -> Uuid {
        let bilan = (Utc::now().date_naive() - chrono::Duration::days(30)).to_string();
        self.patient("1958-03-14", false, &[(&bilan, "bilan")], true)
            .await
    }

    pub async fn session(&self, patient: Uuid, extra: Value) -> Uuid {
        self.session_at(patient, Utc::now(), extra).await
    }

    pub async fn session_at(&self, patient: Uuid, starts_at: DateTime<Utc>, extra: Value) -> Uuid {
        let mut body = json!({"patient": patient, "starts_at": starts_at, "act_code": "MEMBRE", "patient_consent_on_join": false});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let s = self.post("/api/sessions", body).await;
        serde_json::from_value(s["id"].clone()).expect("id")
    }

    /// (token, participant id) of a new link for `role`.
    pub async fn link(&self, session: Uuid, role: &str) -> (String, Uuid) {
        let l = self
            .post(
                &format!("/api/sessions/{session}/links"),
                json!({"role": role}),
            )
            .await;
        let url = l["url"].as_str().expect("url");
        let token = url.split_once("/j#").expect("fragment").1.to_owned();
        assert_eq!(l["token"].as_str(), Some(token.as_str()));
        (
            token,
            serde_json::from_value(l["participant"].clone()).expect("participant"),
        )
    }

    pub async fn record(&self, session: Uuid) -> Value {
        self.get(&format!("/api/sessions/{session}/record")).await
    }
}

pub fn today_minus(days: i64) -> String {
    (Utc::now().date_naive() - chrono::Duration::days(days)).to_string()
}

pub fn birth_years_ago(years: i32, plus_days: i64) -> String {
    let today = telesoin_core::model::local_date(Utc::now());
    let d = today
        .checked_sub_months(chrono::Months::new(12 * years as u32))
        .expect("date")
        + chrono::Duration::days(plus_days);
    d.format("%Y-%m-%d").to_string()
}

pub fn _date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// A raw WebSocket client of the signaling protocol.
pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub fn tls_client() -> Arc<rustls::ClientConfig> {
    telesoin_server::tls::install_ring();
    #[derive(Debug)]
    struct AnyCert;
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth(),
    )
}

impl Ws {
    pub async fn open(
        port: u16,
        origin: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("wss://localhost:{port}/ws").into_client_request()?;
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", o.parse().expect("header"));
        }
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let connector = tokio_tungstenite::Connector::Rustls(tls_client());
        let (inner, _) =
            tokio_tungstenite::client_async_tls_with_config(req, tcp, None, Some(connector))
                .await?;
        Ok(Ws { inner })
    }

    /// Opens a socket and sends `join`.
    pub async fn join(port: u16, token: &str) -> Ws {
        let mut ws = Ws::open(port, None).await.expect("open");
        ws.send(json!({"type": "join", "token": token, "device": {"kind": "test"}}))
            .await;
        ws
    }

    pub async fn send(&mut self, v: Value) {
        self.inner
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_raw(
        &mut self,
        text: String,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.inner.send(Message::Text(text.into())).await
    }

    /// The next JSON message, skipping nothing. Panics on timeout or close.
    pub async fn recv(&mut self) -> Value {
        loop {
            match tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("message in time")
            {
                Some(Ok(Message::Text(t))) => {
                    // Every frame must also be a valid ServerMsg.
                    ServerMsg::parse(t.as_str())
                        .unwrap_or_else(|e| panic!("unparseable server message {t}: {e}"));
                    return serde_json::from_str(t.as_str()).expect("json");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// Receives until a message of `kind` arrives; returns it and what came before.
    pub async fn until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let m = self.recv().await;
            if m["type"] == kind {
                return (m, before);
            }
            before.push(m);
        }
    }

    /// Nothing arrives within `d` (the socket stays open).
    pub async fn silent_for(&mut self, d: Duration) -> Option<Value> {
        match tokio::time::timeout(d, self.inner.next()).await {
            Err(_) => None,
            Ok(Some(Ok(Message::Text(t)))) => Some(serde_json::from_str(t.as_str()).expect("json")),
            Ok(other) => Some(Value::String(format!("{other:?}"))),
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
                Some(Ok(Message::Close(None))) | None => return 1005,
                Some(Ok(_)) => continue,
                Some(Err(_)) => return 1006,
            }
        }
    }
}

/// Joins with `token` and expects `welcome`; returns the socket and the welcome.
pub async fn welcomed(port: u16, token: &str) -> (Ws, Value) {
    let mut ws = Ws::join(port, token).await;
    let w = ws.recv().await;
    assert_eq!(w["type"], "welcome", "{w}");
    (ws, w)
}

/// Kiné and patient both admitted in a fresh session; returns (kiné ws, patient ws, ids).
pub async fn admitted_pair(api: &Api, port: u16) -> (Ws, Ws, Uuid, Uuid, Uuid) {
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({})).await;
    let (kt, kid) = api.link(session, "kine").await;
    let (pt, pid) = api.link(session, "patient").await;
    let (mut k, _) = welcomed(port, &kt).await;
    assert_eq!(k.recv().await["type"], "admitted");
    let (mut p, _) = welcomed(port, &pt).await;
    let (w, _) = p.until("waiting").await;
    assert_eq!(w["reason"], "awaiting_admission");
    let (lobby, _) = k.until("lobby_waiting").await;
    assert_eq!(lobby["participant"], pid.to_string());
    k.send(json!({"type": "admit", "participant": pid})).await;
    p.until("admitted").await;
    let (joined, _) = k.until("peer_joined").await;
    assert_eq!(joined["peer"]["participant"], pid.to_string());
    (k, p, session, kid, pid)
}
