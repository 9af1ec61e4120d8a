//! Reaching the patient, against real parts: a real SMTP server (Debian's aiosmtpd, started per
//! test on a free port, writing a Maildir), a local HTTP receiver playing the SMS gateway, the
//! real binary killed with SIGKILL between claiming a reminder and sending it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use chrono::Utc;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use uuid::Uuid;

use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A real SMTP server: `aiosmtpd` (Debian `python3-aiosmtpd`, installed by tests/run) with its
/// Mailbox handler, so that each message lands as a file in a Maildir.
struct Smtp {
    _child: Child,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

/// How the test relay secures its connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RelayTls {
    /// Plain text.
    None,
    /// STARTTLS, required by the relay before `MAIL` (aiosmtpd's `require_starttls`).
    Starttls,
    /// Implicit TLS from the first byte (SMTPS).
    Implicit,
}

/// A test CA and the relay's certificate for `localhost` signed by it (PEM files).
struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    fn new() -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().expect("dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Telesoin test relay CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let leaf_key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &*ca)
            .expect("leaf");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("ca.pem");
        std::fs::write(dir.path().join("relay.pem"), leaf.pem()).expect("relay.pem");
        std::fs::write(dir.path().join("relay.key"), leaf_key.serialize_pem()).expect("key");
        TestCa { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Smtp {
    async fn start(port: u16) -> Smtp {
        Smtp::start_with(port, RelayTls::None, None).await
    }

    /// An aiosmtpd relay on `port`, with TLS from `ca`'s relay certificate when `tls` says so.
    async fn start_with(port: u16, tls: RelayTls, ca: Option<&TestCa>) -> Smtp {
        let dir = tempfile::tempdir().expect("dir");
        let maildir = dir.path().join("mail");
        let mut cmd = Command::new(aiosmtpd());
        cmd.args([
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ]);
        if let Some(ca) = ca {
            let (cert, key) = (
                ca.dir.path().join("relay.pem"),
                ca.dir.path().join("relay.key"),
            );
            match tls {
                RelayTls::None => {}
                RelayTls::Starttls => {
                    cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
                }
                RelayTls::Implicit => {
                    cmd.arg("--smtpscert").arg(cert).arg("--smtpskey").arg(key);
                }
            }
        }
        let child = cmd
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd (apt-get install python3-aiosmtpd)");
        // Ready when it accepts a connection and (in clear) greets.
        tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    if tls == RelayTls::Implicit {
                        return;
                    }
                    let mut buf = [0u8; 3];
                    use tokio::io::AsyncReadExt;
                    if s.read_exact(&mut buf).await.is_ok() && &buf == b"220" {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("aiosmtpd listening");
        Smtp {
            _child: child,
            maildir,
            _dir: dir,
        }
    }

    /// The messages received so far, parsed by Python's `email` package.
    fn messages(&self) -> Vec<Value> {
        let new = self.maildir.join("new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            out.push(parse_mail(&e.path()));
        }
        out
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let m = self.messages();
                if m.len() >= n {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("mail received in time")
    }
}

fn aiosmtpd() -> String {
    std::env::var("TELESOIN_TEST_AIOSMTPD").unwrap_or_else(|_| "/usr/bin/aiosmtpd".into())
}

/// `{rcpt, to, from, subject, text, html, ics, ics_type}` of one stored message.
fn parse_mail(path: &Path) -> Value {
    const SCRIPT: &str = r#"
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
out = {'rcpt': m.get_all('X-RcptTo'), 'to': str(m['To']), 'from': str(m['From']), 'subject': str(m['Subject'])}
for part in m.walk():
    ct = part.get_content_type()
    if part.is_multipart():
        continue
    if ct == 'text/plain': out['text'] = part.get_content()
    elif ct == 'text/html': out['html'] = part.get_content()
    elif ct == 'text/calendar':
        out['ics'] = part.get_content() if isinstance(part.get_content(), str) else part.get_content().decode()
        out['ics_name'] = part.get_filename()
print(json.dumps(out))
"#;
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// What the SMS gateway received: (headers, JSON body) of each request.
type Received = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// A local HTTP receiver playing the SMS gateway; answers `status` to every request.
async fn gateway(status: u16) -> (String, Received) {
    let got: Received = Arc::default();
    async fn handle(
        State((got, status)): State<(Received, u16)>,
        headers: HeaderMap,
        body: String,
    ) -> axum::http::StatusCode {
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        got.lock().push((headers, v));
        axum::http::StatusCode::from_u16(status).expect("status")
    }
    let app = axum::Router::new()
        .route("/send", axum::routing::post(handle))
        .with_state((got.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://127.0.0.1:{}/send",
        listener.local_addr().expect("addr").port()
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} in time"));
}

/// The code of a short link, and its exchange for a token.
async fn exchange(api: &Api, link: &str) -> (u16, Value) {
    let code = link.split_once("/j#").expect("fragment").1;
    assert_eq!(code.len(), 22, "{link}");
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let res = api
        .http
        .post(format!("{}/api/join-code", api.base))
        .header("origin", &api.base)
        .json(&json!({ "code": code }))
        .send()
        .await
        .expect("exchange");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

async fn put(api: &Api, path: &str, body: Value) -> (u16, Value) {
    api.call(reqwest::Method::PUT, path, Some(body)).await
}

#[tokio::test]
async fn contact_is_normalised_validated_and_purged_with_the_patient() {
    let server = Server::start().await;
    let api = server.kine("contact@example.fr").await;
    let p = api.ready_patient().await;
    let path = format!("/api/patients/{p}/contact");
    assert_eq!(
        api.get(&path).await,
        json!({"phone": null, "email": null, "preferred_channel": "both"})
    );
    let (status, c) = put(&api, &path, json!({"phone": "06 12 34 56 78", "email": " Marie@Example.FR ", "preferred_channel": "sms"})).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        c,
        json!({"phone": "+33612345678", "email": "Marie@example.fr", "preferred_channel": "sms"})
    );
    assert_eq!(api.get(&path).await, c, "stored as normalised");
    for (body, field) in [
        (json!({"phone": "06 12 34"}), "phone"),
        (json!({"email": "marie.example.fr"}), "email"),
        (json!({"preferred_channel": "pigeon"}), "preferred_channel"),
    ] {
        let (status, e) = put(&api, &path, body).await;
        assert_eq!(
            (status, e["details"]["field"].as_str()),
            (422, Some(field)),
            "{e}"
        );
        assert!(e["message_fr"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Another kiné's patient is not found.
    let other = server.kine("other@example.fr").await;
    assert_eq!(other.call(reqwest::Method::GET, &path, None).await.0, 404);
    // Purged with the patient.
    server
        .state
        .store
        .purge_patient(telesoin_core::PatientId(p))
        .await
        .expect("purge");
    assert_eq!(
        server
            .state
            .store
            .contact(telesoin_core::PatientId(p))
            .await
            .expect("ok"),
        None
    );
    server.stop().await;
}

#[tokio::test]
async fn a_short_link_code_opens_the_seat_and_closes_with_its_link() {
    let server = Server::start().await;
    let api = server.kine("codes@example.fr").await;
    let p = api.ready_patient().await;
    let s = api.session(p, json!({})).await;
    let link = api
        .post(
            &format!("/api/sessions/{s}/links"),
            json!({"role": "patient"}),
        )
        .await;
    let short = link["short_url"].as_str().expect("short_url");
    assert_eq!(
        short.len(),
        format!("{}/j#", server.base).len() + 22,
        "{short}"
    );
    let (status, got) = exchange(&api, short).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["session"], json!(s));
    assert_eq!(got["kine_name"], "Claire Martin");
    let (mut ws, w) = welcomed(server.port, got["token"].as_str().expect("token")).await;
    assert_eq!(w["role"], "patient");
    assert_eq!(
        ws.recv().await["type"],
        "waiting",
        "the patient seat, as with the token"
    );
    drop(ws);
    // The long token link keeps working for platforms.
    let (_ws, _) = welcomed(server.port, link["token"].as_str().expect("token")).await;
    // Unknown and malformed codes.
    let bogus = format!("{}/j#{}", server.base, "A".repeat(22));
    assert_eq!(exchange(&api, &bogus).await.1["code"], "token_invalid");
    // Revoking the link closes its code.
    let jti = link["jti"].as_str().expect("jti");
    api.post(&format!("/api/links/{jti}/revoke"), json!({}))
        .await;
    let (status, e) = exchange(&api, short).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (403, Some("token_revoked")),
        "{e}"
    );
    // Cancelling the session closes every code.
    let other = api
        .post(
            &format!("/api/sessions/{s}/links"),
            json!({"role": "patient"}),
        )
        .await;
    api.post(&format!("/api/sessions/{s}/cancel"), json!({}))
        .await;
    let (_, e) = exchange(&api, other["short_url"].as_str().expect("short")).await;
    assert!(
        ["token_revoked", "session_cancelled"].contains(&e["code"].as_str().unwrap_or("")),
        "{e}"
    );
    // The kiné's own link stays a token link.
    let s2 = api.session(p, json!({})).await;
    let k = api
        .post(
            &format!("/api/sessions/{s2}/links"),
            json!({"role": "kine"}),
        )
        .await;
    assert!(k.get("short_url").is_none(), "{k}");
    server.stop().await;
}

#[tokio::test]
async fn nothing_is_sent_when_no_channel_is_configured_and_the_refusal_says_why() {
    let server = Server::start().await;
    let api = server.kine("none@example.fr").await;
    let p = api.ready_patient().await;
    put(
        &api,
        &format!("/api/patients/{p}/contact"),
        json!({"phone": "0612345678", "email": "p@example.fr"}),
    )
    .await;
    let s = api.session(p, json!({})).await;
    assert_eq!(
        api.get("/api/reach").await,
        json!({"email_configured": false, "sms_configured": false, "reminder_offsets_minutes": [1440, 60]})
    );
    let (status, e) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/sessions/{s}/send"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (409, Some("channel_not_configured")),
        "{e}"
    );
    assert!(
        e["message_fr"]
            .as_str()
            .is_some_and(|m| m.contains("pas configuré"))
    );
    assert!(
        e["message_en"]
            .as_str()
            .is_some_and(|m| m.contains("not configured"))
    );
    let messages = api.get(&format!("/api/sessions/{s}/messages")).await;
    assert!(
        messages
            .as_array()
            .expect("list")
            .iter()
            .all(|m| m["kind"] == "reminder"),
        "no invitation queued: {messages}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_invitation_e_mail_reaches_a_real_smtp_server_with_french_text_an_ics_and_a_working_link()
 {
    let smtp_port = free_port();
    let smtp = Smtp::start(smtp_port).await;
    let server = Server::start_with(|c| {
        c.smtp_relay = Some(format!("127.0.0.1:{smtp_port}"));
        c.smtp_security = telesoin_server::config::SmtpSecurity::None;
        c.smtp_from = Some("Cabinet Martin <rdv@cabinet.example.fr>".into());
    })
    .await;
    let api = server.kine("mail@example.fr").await;
    let p = api.ready_patient().await;
    put(
        &api,
        &format!("/api/patients/{p}/contact"),
        json!({"email": "m.dupont@example.fr", "preferred_channel": "email"}),
    )
    .await;
    // 2026-12-03 13:30 UTC is 14h30 in Paris, far enough ahead for both reminders.
    let starts = Utc::now() + chrono::Duration::days(3);
    let s = api.session_at(p, starts, json!({})).await;
    let sent = api
        .post(&format!("/api/sessions/{s}/send"), json!({}))
        .await;
    let sent = sent.as_array().expect("messages");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0]["channel"].as_str(), sent[0]["state"].as_str()),
        (Some("email"), Some("sent")),
        "{sent:?}"
    );

    let mails = smtp.wait_for(1).await;
    let m = &mails[0];
    assert_eq!(m["rcpt"], json!(["m.dupont@example.fr"]), "{m}");
    assert!(
        m["from"]
            .as_str()
            .is_some_and(|f| f.contains("rdv@cabinet.example.fr"))
    );
    let paris = starts.with_timezone(&chrono_tz::Europe::Paris);
    let hour = paris.format("%-Hh%M").to_string();
    let subject = m["subject"].as_str().expect("subject");
    assert!(
        subject.starts_with("Votre séance de kiné en vidéo le ") && subject.contains(&hour),
        "{subject}"
    );
    let text = m["text"].as_str().expect("text part");
    for needle in [
        "Claire Martin",
        "heure de Paris",
        "calme",
        "chargé",
        "bouger",
        &hour,
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    let html = m["html"].as_str().expect("html part");
    assert!(
        html.contains("Ouvrir la séance") && html.contains("href=\""),
        "{html}"
    );
    let ics = m["ics"].as_str().expect("ics attachment");
    assert_eq!(m["ics_name"], "seance.ics");
    assert!(
        ics.contains("BEGIN:VEVENT") && ics.contains("METHOD:REQUEST"),
        "{ics}"
    );
    assert!(ics.contains(&format!("UID:{s}@")), "{ics}");
    assert!(
        ics.contains(&format!("DTSTART:{}", starts.format("%Y%m%dT%H%M%SZ"))),
        "{ics}"
    );
    // The link in the e-mail works: its code opens the patient's seat.
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/j#"))
        .expect("link in the text");
    assert!(html.contains(link), "the same link in the HTML part");
    let (status, got) = exchange(&api, link).await;
    assert_eq!(status, 200, "{got}");
    // Three days ahead, its token opens only with the window: the exchange names the session.
    assert_eq!(got["session"], json!(s), "{got}");
    // The reminders of the session are queued, the day before and an hour before.
    let messages = api.get(&format!("/api/sessions/{s}/messages")).await;
    let reminders: Vec<_> = messages
        .as_array()
        .expect("list")
        .iter()
        .filter(|m| m["kind"] == "reminder" && m["channel"] == "email")
        .collect();
    assert_eq!(reminders.len(), 2, "{messages}");
    drop(smtp);
    server.stop().await;
}

/// Checks one invitation as the relay received it: the recipient, the French text with the
/// kiné's name and the hour in Paris, the `.ics` of the session, and a link that opens.
async fn check_invitation(api: &Api, m: &Value, s: Uuid, starts: chrono::DateTime<Utc>, to: &str) {
    assert_eq!(m["rcpt"], json!([to]), "{m}");
    let paris = starts.with_timezone(&chrono_tz::Europe::Paris);
    let hour = paris.format("%-Hh%M").to_string();
    let subject = m["subject"].as_str().expect("subject");
    assert!(
        subject.starts_with("Votre séance de kiné en vidéo le ") && subject.contains(&hour),
        "{subject}"
    );
    let text = m["text"].as_str().expect("text part");
    for needle in ["Claire Martin", "heure de Paris", "calme", &hour] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    let ics = m["ics"].as_str().expect("ics attachment");
    assert!(
        ics.contains("METHOD:REQUEST") && ics.contains(&format!("UID:{s}@")),
        "{ics}"
    );
    assert!(
        ics.contains(&format!("DTSTART:{}", starts.format("%Y%m%dT%H%M%SZ"))),
        "{ics}"
    );
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/j#"))
        .expect("link in the text");
    let (status, got) = exchange(api, link).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["session"], json!(s), "{got}");
}

/// The relay speaks TLS (STARTTLS, then implicit TLS) with a certificate from a private CA:
/// trusted through `smtp_ca_file`, the invitation arrives; without it, the certificate is
/// refused and nothing is sent in clear.
#[tokio::test]
async fn e_mail_goes_over_starttls_and_implicit_tls_to_a_relay_whose_ca_is_in_smtp_ca_file() {
    let ca = TestCa::new();
    for (tls, security) in [
        (
            RelayTls::Starttls,
            telesoin_server::config::SmtpSecurity::Starttls,
        ),
        (
            RelayTls::Implicit,
            telesoin_server::config::SmtpSecurity::Tls,
        ),
    ] {
        let smtp_port = free_port();
        let smtp = Smtp::start_with(smtp_port, tls, Some(&ca)).await;
        for trusted in [false, true] {
            let server = Server::start_with(|c| {
                c.smtp_relay = Some(format!("localhost:{smtp_port}"));
                c.smtp_security = security;
                c.smtp_ca_file = trusted.then(|| ca.ca());
                c.smtp_from = Some("Cabinet Martin <rdv@cabinet.example.fr>".into());
            })
            .await;
            let api = server.kine("tls@example.fr").await;
            let p = api.ready_patient().await;
            put(
                &api,
                &format!("/api/patients/{p}/contact"),
                json!({"email": "m.dupont@example.fr", "preferred_channel": "email"}),
            )
            .await;
            let starts = Utc::now() + chrono::Duration::days(2);
            let s = api.session_at(p, starts, json!({})).await;
            let sent = api
                .post(&format!("/api/sessions/{s}/send"), json!({}))
                .await;
            let sent = sent.as_array().expect("messages");
            assert_eq!(sent.len(), 1, "{sent:?}");
            if !trusted {
                // The public roots do not know the relay's CA: the handshake fails, the
                // message waits for a retry, and the relay received nothing.
                assert_eq!(sent[0]["state"], "pending", "{tls:?}: {sent:?}");
                let detail = sent[0]["detail"].as_str().unwrap_or("");
                assert!(detail.starts_with("smtp"), "{tls:?}: {detail}");
                assert!(!detail.contains("m.dupont@example.fr"), "{detail}");
                assert!(smtp.messages().is_empty(), "{tls:?}: nothing in clear");
            } else {
                assert_eq!(sent[0]["state"], "sent", "{tls:?}: {sent:?}");
                let mails = smtp.wait_for(1).await;
                check_invitation(&api, &mails[0], s, starts, "m.dupont@example.fr").await;
            }
            server.stop().await;
        }
        drop(smtp);
    }
}

#[tokio::test]
async fn the_sms_gateway_gets_one_documented_request_in_one_segment_then_the_cancellation() {
    let (url, got) = gateway(200).await;
    let server = Server::start_with(|c| {
        c.sms_gateway_url = Some(url.clone());
        c.sms_gateway_auth = Some("Bearer gw-secret".into());
        c.sms_sender = "KineDurand".into();
    })
    .await;
    let api = server.kine("sms@example.fr").await;
    let p = api.ready_patient().await;
    put(
        &api,
        &format!("/api/patients/{p}/contact"),
        json!({"phone": "06 12 34 56 78", "preferred_channel": "sms"}),
    )
    .await;
    let s = api
        .session_at(p, Utc::now() + chrono::Duration::hours(5), json!({}))
        .await;
    let sent = api
        .post(
            &format!("/api/sessions/{s}/send"),
            json!({"channels": ["sms"]}),
        )
        .await;
    assert_eq!(sent[0]["state"], "sent", "{sent}");
    let (headers, body) = got.lock()[0].clone();
    assert_eq!(headers["authorization"], "Bearer gw-secret");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["to"], "+33612345678");
    assert_eq!(body["sender"], "KineDurand");
    assert_eq!(
        body["id"], sent[0]["id"],
        "the message id, the same on every retry"
    );
    assert_eq!(
        headers["idempotency-key"].to_str().ok(),
        sent[0]["id"].as_str()
    );
    let text = body["text"].as_str().expect("text");
    let units = telesoin_core::reach::gsm7_units(text).expect("GSM-7 only");
    assert!(units <= 160, "{units} units: {text}");
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/j#"))
        .expect("link");
    assert!(link.starts_with(&format!("{}/j#", server.base)), "{link}");
    assert!(
        text.contains("Claire Martin") && text.contains("calme"),
        "{text}"
    );
    // The gateway's link works (against this server: the public URL is only the link's base).
    let code_link = format!("{}/j#{}", api.base, link.split_once("/j#").expect("#").1);
    let (status, _) = exchange(&api, &code_link).await;
    assert_eq!(status, 200);

    // Cancelling: the notice goes (the patient had been told), the reminders stop.
    api.post(&format!("/api/sessions/{s}/cancel"), json!({}))
        .await;
    wait_until("the cancellation SMS", || got.lock().len() >= 2).await;
    let (_, notice) = got.lock()[1].clone();
    let notice_text = notice["text"].as_str().expect("text");
    assert!(
        notice_text.contains("annulée") && !notice_text.contains("https://"),
        "{notice_text}"
    );
    let messages = api.get(&format!("/api/sessions/{s}/messages")).await;
    let list = messages.as_array().expect("list");
    assert!(
        list.iter()
            .filter(|m| m["kind"] == "reminder")
            .all(|m| m["state"] == "cancelled"),
        "{messages}"
    );
    assert!(
        list.iter()
            .any(|m| m["kind"] == "cancelled" && m["channel"] == "sms" && m["state"] == "sent")
    );
    assert!(
        list.iter().any(|m| m["kind"] == "cancelled"
            && m["channel"] == "email"
            && m["state"] == "skipped"),
        "{messages}"
    );
    // Nothing more, however long we wait for the worker.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(got.lock().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn moving_a_session_tells_the_patient_and_moves_the_reminders() {
    let (url, got) = gateway(200).await;
    let server = Server::start_with(|c| c.sms_gateway_url = Some(url.clone())).await;
    let api = server.kine("move@example.fr").await;
    let p = api.ready_patient().await;
    put(
        &api,
        &format!("/api/patients/{p}/contact"),
        json!({"phone": "+33 7 00 00 00 01", "preferred_channel": "sms"}),
    )
    .await;
    let first = Utc::now() + chrono::Duration::days(2);
    let s = api.session_at(p, first, json!({})).await;
    api.post(&format!("/api/sessions/{s}/send"), json!({}))
        .await;
    assert_eq!(got.lock().len(), 1);
    let later = chrono::DateTime::from_timestamp_millis(
        (first + chrono::Duration::days(1)).timestamp_millis(),
    )
    .expect("ms, as stored");
    let moved = api
        .post(
            &format!("/api/sessions/{s}/move"),
            json!({"starts_at": later}),
        )
        .await;
    assert_eq!(
        moved["starts_at"]
            .as_str()
            .map(|t| t.parse::<chrono::DateTime<Utc>>().expect("t")),
        Some(later)
    );
    wait_until("the move SMS", || got.lock().len() >= 2).await;
    let text = got.lock()[1].1["text"].as_str().expect("text").to_owned();
    let day = later
        .with_timezone(&chrono_tz::Europe::Paris)
        .format("%d/%m")
        .to_string();
    assert!(
        text.contains("déplacée") && text.contains(&day) && text.contains("/j#"),
        "{text}"
    );
    let messages = api.get(&format!("/api/sessions/{s}/messages")).await;
    let reminders: Vec<_> = messages
        .as_array()
        .expect("list")
        .iter()
        .filter(|m| m["kind"] == "reminder" && m["channel"] == "sms")
        .collect();
    let pending: Vec<_> = reminders
        .iter()
        .filter(|m| m["state"] == "pending")
        .collect();
    let cancelled = reminders
        .iter()
        .filter(|m| m["state"] == "cancelled")
        .count();
    assert_eq!((pending.len(), cancelled), (2, 2), "{messages}");
    let day_before =
        (later - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(
        pending.iter().any(|m| m["due_at"]
            .as_str()
            .is_some_and(|d| d.starts_with(&day_before[..16]))),
        "{messages}"
    );
    // The code of the first message still works over the new window.
    let link = got.lock()[0].1["text"]
        .as_str()
        .expect("t")
        .split_whitespace()
        .find(|w| w.contains("/j#"))
        .expect("link")
        .to_owned();
    let code_link = format!("{}/j#{}", api.base, link.split_once("/j#").expect("#").1);
    let (status, got_code) = exchange(&api, &code_link).await;
    assert_eq!(status, 200, "{got_code}");
    assert_eq!(
        got_code["starts_at"]
            .as_str()
            .map(|t| t.parse::<chrono::DateTime<Utc>>().expect("t")),
        Some(later)
    );
    server.stop().await;
}

/// Starts the real binary on `dir`; its stderr lines are collected into `log`.
async fn spawn(dir: &Path, port: u16, smtp_port: u16, log: Arc<Mutex<Vec<String>>>) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_telesoin"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("TELESOIN_LOG", "debug")
        .env("TELESOIN_SMTP_RELAY", format!("127.0.0.1:{smtp_port}"))
        .env("TELESOIN_SMTP_SECURITY", "none")
        .env("TELESOIN_SMTP_FROM", "rdv@cabinet.example.fr")
        .env("TELESOIN_MESSAGE_LEASE_SECONDS", "4")
        .env("TELESOIN_MESSAGE_TIMEOUT_SECONDS", "3")
        .env("TELESOIN_MESSAGE_RETRY_SECONDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn telesoin");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let started = log.clone();
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("read") {
            let ready = line.contains("listening on");
            started.lock().push(line);
            if ready {
                return;
            }
        }
        panic!("telesoin exited before listening");
    })
    .await
    .expect("server started in time");
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            log.lock().push(l);
        }
    });
    child
}

async fn outbox_row(db: &Path) -> (String, i64, Option<i64>) {
    use sqlx::Row;
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn: sqlx::SqliteConnection = sqlx::Connection::connect(&url).await.expect("open db");
    let r = sqlx::query("SELECT state, attempts, claimed_until FROM message_outbox WHERE kind = 'reminder' AND channel = 'email'")
        .fetch_one(&mut conn)
        .await
        .expect("row");
    (r.get("state"), r.get("attempts"), r.get("claimed_until"))
}

#[tokio::test]
async fn a_reminder_claimed_when_the_server_is_killed_is_sent_once_after_the_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let smtp_port = free_port();
    let status = Command::new(env!("CARGO_BIN_EXE_telesoin"))
        .args([
            "add-kine",
            "--email",
            "reminder@example.fr",
            "--name",
            "Claire Martin",
            "--rpps",
            "10008888888",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("TELESOIN_NEW_PASSWORD", PASSWORD)
        .status()
        .await
        .expect("add-kine");
    assert!(status.success());
    // First, the relay is a tarpit: it accepts and never greets, so the worker that claimed the
    // reminder is stuck before sending anything when it is killed.
    let tarpit = tokio::net::TcpListener::bind(("127.0.0.1", smtp_port))
        .await
        .expect("tarpit");
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut server = spawn(dir.path(), port, smtp_port, log.clone()).await;
    let api = Api {
        http: http(),
        base: format!("https://localhost:{port}"),
        cookie: String::new(),
    }
    .login("reminder@example.fr")
    .await;
    let p = api.ready_patient().await;
    put(&api, &format!("/api/patients/{p}/contact"), json!({"phone": "06 98 76 54 32", "email": "rappel.patient@example.fr", "preferred_channel": "email"})).await;
    // A reminder 20 minutes before a session that starts in 20 minutes and 3 seconds.
    let (status, _) = put(
        &api,
        "/api/reach",
        json!({"reminder_offsets_minutes": [20]}),
    )
    .await;
    assert_eq!(status, 200);
    let s = api
        .session_at(
            p,
            Utc::now() + chrono::Duration::minutes(20) + chrono::Duration::seconds(3),
            json!({}),
        )
        .await;
    let (stuck, _) = tokio::time::timeout(Duration::from_secs(20), tarpit.accept())
        .await
        .expect("the worker connects to the relay")
        .expect("accept");
    let db = dir.path().join("telesoin.db");
    let (state, attempts, claimed) = outbox_row(&db).await;
    assert_eq!(
        (state.as_str(), attempts),
        ("pending", 1),
        "claimed, not sent"
    );
    assert!(claimed.is_some());

    server.kill().await.expect("kill -9");
    drop((stuck, tarpit));
    let smtp = Smtp::start(smtp_port).await;
    let mut server = spawn(dir.path(), port, smtp_port, log.clone()).await;

    let mails = smtp.wait_for(1).await;
    assert_eq!(mails[0]["rcpt"], json!(["rappel.patient@example.fr"]));
    assert!(
        mails[0]["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("Rappel")),
        "{}",
        mails[0]
    );
    // Sent once: another lease period and some later ticks send nothing more.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(smtp.messages().len(), 1, "no second send");
    let (state, attempts, _) = outbox_row(&db).await;
    assert_eq!((state.as_str(), attempts), ("sent", 2));
    let api = api.login("reminder@example.fr").await;
    let messages = api.get(&format!("/api/sessions/{s}/messages")).await;
    assert!(
        messages
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m["kind"] == "reminder" && m["channel"] == "email" && m["state"] == "sent")
    );
    server.kill().await.expect("kill");
    // Never in a log: the address, the phone number, a code.
    let text = log.lock().join("\n");
    assert!(text.contains("listening on"), "the log was read");
    for secret in [
        "rappel.patient@example.fr",
        "+33698765432",
        "06 98 76 54 32",
        "/j#",
    ] {
        assert!(!text.contains(secret), "{secret:?} in the server log");
    }
}
