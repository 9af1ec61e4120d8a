//! Structure-aware fuzzing on stable Rust (proptest): the signaling parser, the join-token
//! checks and the REST bodies, the last two against a real server.
//!
//! A short bounded run is part of `cargo test` (`TELESOIN_FUZZ_CASES`, default 256 cases per
//! property). The long run:
//!
//! ```text
//! TELESOIN_FUZZ_CASES=200000 cargo test --release -p telesoin-server --test fuzz -- --test-threads=1
//! ```
//!
//! Long runs so far (debug build, one thread, 2026-12-02, on the shared 2-core machine):
//! 49 min in all: 40,000 then 60,000 then 100,000 cases of the parser, join-token and REST
//! properties, and 11,000 + 30,000 + 50,000 signaling sequences against one live server.
//! Findings: (1) serde ignores unknown fields on unit variants (`ping`, `hangup`) despite
//! `deny_unknown_fields` (harmless, exempted below); (2) a wrong oracle of ours (the server's
//! leeway is 5 s); (3) one `welcome` not received within 10 s while a cargo build starved the
//! run at nice 19: its saved seed passes, not reproduced since. No panic, no 5xx, no token
//! accepted that breaks a rule.
//!
//! Failures are shrunk by proptest and the seed is saved under
//! `crates/telesoin-server/tests/fuzz.proptest-regressions` to be replayed on every later run.

#[path = "spine/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::*;
use telesoin_core::claims::{JOIN_TOKEN_TYPE, JoinClaims};
use telesoin_core::model::Role;
use telesoin_proto::signal::ClientMsg;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

fn cases() -> u32 {
    std::env::var("TELESOIN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking against a live server is slow; a few hundred steps find the core.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
        Just(json!(Uuid::new_v4())),
        Just(json!("1958-03-14")),
        Just(json!(Utc::now())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const TYPES: [&str; 12] = [
    "join",
    "attest",
    "consent",
    "admit",
    "offer",
    "answer",
    "candidate",
    "media",
    "hangup",
    "ping",
    "leave",
    "JOIN",
];
const FIELDS: [&str; 12] = [
    "token",
    "device",
    "companion",
    "text_version",
    "participant",
    "to",
    "data",
    "state",
    "incident",
    "ago_ms",
    "video_in",
    "extra",
];

/// A signaling message: a known or odd `type` with known or odd fields and any values.
fn client_message() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            prop::sample::select(TYPES.to_vec()).prop_map(String::from),
            ".{0,12}"
        ],
        prop::collection::btree_map(
            prop_oneof![
                prop::sample::select(FIELDS.to_vec()).prop_map(String::from),
                "[a-z]{1,8}"
            ],
            json_value(),
            0..4,
        ),
    )
        .prop_map(|(t, fields)| {
            let mut m: serde_json::Map<String, Value> = fields.into_iter().collect();
            m.insert("type".into(), Value::from(t));
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(config())]

    /// The parser never panics; what it accepts has exactly the fields of its variant and
    /// survives a round trip.
    #[test]
    fn the_signaling_parser_is_total_and_strict(msg in client_message(), noise in ".{0,200}") {
        let text = msg.to_string();
        let _ = ClientMsg::parse(&noise);
        if let Ok(parsed) = ClientMsg::parse(&text) {
            let again = serde_json::to_string(&parsed).expect("serialize");
            let back = ClientMsg::parse(&again).expect("round trip");
            prop_assert_eq!(
                serde_json::to_value(&back).expect("value"),
                serde_json::to_value(&parsed).expect("value")
            );
            // Finding (kept visible here): serde ignores unknown fields on the unit variants of an
            // internally tagged enum despite `deny_unknown_fields`, so `{"type":"ping","x":1}`
            // parses. Harmless (nothing is read from it); `hangup{ago_ms}` and `leave{ago_ms}`
            // are struct variants now and refuse unknown fields.
            if matches!(parsed, ClientMsg::Ping) {
                return Ok(());
            }
            let known = ["type", "token", "device", "companion", "text_version", "participant", "to", "data", "state", "incident", "ago_ms", "video_in", "video_out", "media_lost_ago_ms"];
            for k in msg.as_object().expect("object").keys() {
                prop_assert!(known.contains(&k.as_str()), "accepted an unknown field {}: {}", k, text);
            }
        }
    }

    /// Truncated and byte-flipped input never panics the parser.
    #[test]
    fn the_signaling_parser_survives_corruption(msg in client_message(), cut in 0usize..400, flip in any::<(usize, u8)>()) {
        let mut bytes = msg.to_string().into_bytes();
        bytes.truncate(cut.min(bytes.len()));
        if !bytes.is_empty() {
            let i = flip.0 % bytes.len();
            bytes[i] ^= flip.1;
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = ClientMsg::parse(text);
        }
    }
}

/// One server and runtime for the server-side properties.
struct Live {
    rt: tokio::runtime::Runtime,
    server: Server,
    api: Api,
    kine_token: String,
    good: JoinClaims,
    key: EncodingKey,
    kid: String,
}

fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (server, api, kine_token) = rt.block_on(async {
            let server = Server::start_with(|c| {
                // Fuzzing sends bursts: the rate limit is not what is under test.
                c.rate_per_second = 10_000;
                c.login_max_failures = 1000;
                // One seat rejoins for every case: the rejoin bound is not under test either.
                c.rejoin_burst = 1_000_000;
                c.rejoins_per_minute = 1_000_000;
            })
            .await;
            let api = server.kine("fuzz@example.fr").await;
            let patient = api.ready_patient().await;
            let session = api.session(patient, json!({})).await;
            let (kine_token, _) = api.link(session, "kine").await;
            (server, api, kine_token)
        });
        let payload = kine_token.split('.').nth(1).expect("payload");
        let good: JoinClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims");
        let dir = server.dir.path().join("keys");
        let entry = std::fs::read_dir(&dir)
            .expect("keys")
            .filter_map(Result::ok)
            .find(|e| e.path().extension().is_some_and(|x| x == "pem"))
            .expect("key");
        let key =
            EncodingKey::from_ed_pem(&std::fs::read(entry.path()).expect("pem")).expect("key");
        let kid = entry
            .path()
            .file_stem()
            .expect("kid")
            .to_string_lossy()
            .into_owned();
        Live {
            rt,
            server,
            api,
            kine_token,
            good,
            key,
            kid,
        }
    })
}

#[derive(Debug, Clone)]
enum Alg {
    EdDsa,
    Hs256,
    None,
}

#[derive(Debug, Clone)]
struct TokenCase {
    alg: Alg,
    typ: Option<&'static str>,
    kid_ours: Option<bool>,
    iss_ours: bool,
    aud_ours: bool,
    nbf_offset: i64,
    exp_offset: i64,
    role: Role,
    sid_ours: bool,
    jti_ours: bool,
    /// Flip one character of the finished token at this index (None: untouched).
    flip: Option<usize>,
}

fn token_case() -> impl Strategy<Value = TokenCase> {
    (
        prop_oneof![4 => Just(Alg::EdDsa), 1 => Just(Alg::Hs256), 1 => Just(Alg::None)],
        prop_oneof![4 => Just(Some(JOIN_TOKEN_TYPE)), 1 => Just(Some("JWT")), 1 => Just(None)],
        prop_oneof![4 => Just(Some(true)), 1 => Just(Some(false)), 1 => Just(None)],
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        -10_000i64..10_000,
        -10_000i64..20_000,
        prop_oneof![Just(Role::Kine), Just(Role::Patient)],
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        prop::option::weighted(0.2, 0usize..2000),
    )
        .prop_map(
            |(
                alg,
                typ,
                kid_ours,
                iss_ours,
                aud_ours,
                nbf_offset,
                exp_offset,
                role,
                sid_ours,
                jti_ours,
                flip,
            )| TokenCase {
                alg,
                typ,
                kid_ours,
                iss_ours,
                aud_ours,
                nbf_offset,
                exp_offset,
                role,
                sid_ours,
                jti_ours,
                flip,
            },
        )
}

fn build(live: &Live, c: &TokenCase, now: i64) -> String {
    let claims = JoinClaims {
        iss: if c.iss_ours {
            live.good.iss.clone()
        } else {
            "https://evil.example".into()
        },
        aud: if c.aud_ours {
            live.good.aud.clone()
        } else {
            "other".into()
        },
        nbf: now + c.nbf_offset,
        exp: now + c.exp_offset,
        role: c.role,
        sid: if c.sid_ours {
            live.good.sid
        } else {
            Uuid::new_v4()
        },
        jti: if c.jti_ours {
            live.good.jti
        } else {
            Uuid::new_v4()
        },
        ..live.good.clone()
    };
    let kid = c.kid_ours.map(|ours| {
        if ours {
            live.kid.clone()
        } else {
            "00ff00ff00ff00ff".into()
        }
    });
    let token = match c.alg {
        Alg::EdDsa | Alg::Hs256 => {
            let alg = if matches!(c.alg, Alg::EdDsa) {
                Algorithm::EdDSA
            } else {
                Algorithm::HS256
            };
            let mut h = Header::new(alg);
            h.typ = c.typ.map(String::from);
            h.kid = kid;
            let key = match c.alg {
                Alg::EdDsa => live.key.clone(),
                _ => EncodingKey::from_secret(live.kid.as_bytes()),
            };
            jsonwebtoken::encode(&h, &claims, &key).expect("encode")
        }
        Alg::None => format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": c.typ, "kid": kid}).to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"))
        ),
    };
    match c.flip {
        Some(i) if i < token.len() => {
            let mut b = token.into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            String::from_utf8(b).unwrap_or_default()
        }
        _ => token,
    }
}

proptest! {
    #![proptest_config(config())]

    /// The real join check accepts a token exactly when every RFC 8725 rule holds: our key and
    /// kid, EdDSA, the join typ, our issuer and audience, inside its validity, the issued seat.
    #[test]
    fn join_tokens_pass_exactly_when_every_rule_holds(c in token_case()) {
        let live = live();
        let now = Utc::now();
        let token = build(live, &c, now.timestamp());
        let untouched = c.flip.is_none_or(|i| i >= token.len());
        let leeway = telesoin_server::platform::tokens::LEEWAY_SECS;
        let expect_ok = matches!(c.alg, Alg::EdDsa)
            && c.typ == Some(JOIN_TOKEN_TYPE)
            && c.kid_ours == Some(true)
            && untouched
            && c.iss_ours && c.aud_ours
            && c.nbf_offset <= c.exp_offset
            && c.nbf_offset <= leeway
            && c.exp_offset > -leeway
            && c.role == live.good.role && c.sid_ours && c.jti_ours;
        let got = live.rt.block_on(async {
            let verified = telesoin_server::platform::tokens::verify_join(&live.server.state, &token, now).await?;
            let seat = live
                .server
                .state
                .store
                .link(verified.jti())
                .await
                .map_err(|_| telesoin_core::RefusalCode::Unavailable)?
                .ok_or(telesoin_core::RefusalCode::TokenInvalid)?;
            telesoin_core::claims::check_seat(&verified, &seat)
        });
        // Around the leeway boundaries the oracle's second may differ from the server's: skip.
        let edge = [c.nbf_offset - leeway, c.exp_offset + leeway].iter().any(|d| d.abs() <= 1);
        if !edge {
            prop_assert_eq!(got.is_ok(), expect_ok, "{:?}: {:?}", c, got);
        }
    }

    /// Any REST body on the dashboard's routes gets a refusal or a success, never a 5xx.
    #[test]
    fn rest_bodies_never_break_the_server(
        route in 0usize..7,
        body in prop_oneof![json_value(), client_message()],
        raw in prop::option::weighted(0.2, ".{0,80}"),
    ) {
        let live = live();
        let (status, text) = live.rt.block_on(async {
            let patient = live.api.get("/api/patients").await[0]["id"].as_str().unwrap_or_default().to_owned();
            let (method, path) = match route {
                0 => (reqwest::Method::POST, "/api/patients".to_owned()),
                1 => (reqwest::Method::POST, "/api/sessions".to_owned()),
                2 => (reqwest::Method::POST, format!("/api/patients/{patient}/visits")),
                3 => (reqwest::Method::POST, format!("/api/patients/{patient}/prescriptions")),
                4 => (reqwest::Method::POST, "/api/join-info".to_owned()),
                5 => (reqwest::Method::PUT, "/api/settings".to_owned()),
                _ => (reqwest::Method::POST, "/api/login".to_owned()),
            };
            let res = live.api.http
                .request(method, format!("{}{path}", live.api.base))
                .header("cookie", &live.api.cookie)
                .header("origin", live.api.origin())
                .header("x-csrf-token", live.api.csrf())
                .header("content-type", "application/json")
                .body(raw.clone().unwrap_or_else(|| body.to_string()))
                .send()
                .await
                .expect("request");
            let status = res.status().as_u16();
            (status, res.text().await.unwrap_or_default())
        });
        prop_assert!(status < 500, "{} -> {} {}", body, status, text);
    }

    /// Any sequence of signaling messages on a seated socket leaves the server answering:
    /// either a `pong` to the final ping, or a close with a protocol code, never a crash.
    #[test]
    fn signaling_sequences_never_break_the_server(msgs in prop::collection::vec(client_message(), 1..6)) {
        let live = live();
        let outcome = live.rt.block_on(async {
            let (mut ws, _) = welcomed(live.server.port, &live.kine_token).await;
            for m in &msgs {
                // Never end the session under test: a kiné hangup would.
                if m["type"] == "hangup" || m["type"] == "leave" {
                    continue;
                }
                if ws.inner.send(Message::Text(m.to_string().into())).await.is_err() {
                    break;
                }
            }
            let _ = ws.inner.send(Message::Text(json!({"type": "ping"}).to_string().into())).await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::time::timeout_at(deadline, ws.inner.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        let v: Value = serde_json::from_str(t.as_str()).expect("json");
                        if v["type"] == "pong" {
                            return Ok(());
                        }
                    }
                    Ok(Some(Ok(Message::Close(f)))) => {
                        let code: u16 = f.map(|f| f.code.into()).unwrap_or(1005);
                        return if [1000, 1002, 1007, 1008, 1009, 4001, 4002, 4003].contains(&code) {
                            Ok(())
                        } else {
                            Err(format!("closed with {code}"))
                        };
                    }
                    Ok(Some(Ok(_))) => {}
                    other => return Err(format!("{other:?}")),
                }
            }
        });
        prop_assert!(outcome.is_ok(), "{:?}: {:?}", msgs, outcome);
        let healthy = live.rt.block_on(async {
            live.api.http.get(format!("{}/healthz", live.api.base)).send().await.map(|r| r.status().as_u16())
        });
        prop_assert_eq!(healthy.ok(), Some(200));
    }
}
