//! RFC 8725 (JWT best current practice) on join tokens: every forgery class is refused, at the
//! WebSocket (refused + close 4001, before any seat) and at the join page's preview.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use telesoin_core::claims::JoinClaims;
use telesoin_core::model::Role;
use uuid::Uuid;

use crate::support::*;

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

fn claims_of(token: &str) -> JoinClaims {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
}

/// The server's signing key (PEM) and its kid, read from its data directory.
fn server_key(server: &Server) -> (EncodingKey, String) {
    let dir = server.dir.path().join("keys");
    let entry = std::fs::read_dir(&dir)
        .expect("keys")
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "pem"))
        .expect("a key");
    let pem = std::fs::read(entry.path()).expect("pem");
    let kid = entry
        .path()
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned();
    (EncodingKey::from_ed_pem(&pem).expect("ed pem"), kid)
}

fn sign(key: &EncodingKey, kid: Option<&str>, typ: Option<&str>, claims: &JoinClaims) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = kid.map(String::from);
    h.typ = typ.map(String::from);
    jsonwebtoken::encode(&h, claims, key).expect("sign")
}

/// A token from a raw header and claims with the given signature bytes.
fn assemble(header: Value, claims: &JoinClaims, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(&serde_json::to_vec(claims).expect("json")),
        b64(sig)
    )
}

#[tokio::test]
async fn every_forgery_class_is_refused() {
    let server = Server::start().await;
    let api = server.kine("jwt@example.fr").await;
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({})).await;
    let other = api.session(patient, json!({})).await;
    let (token, _) = api.link(session, "patient").await;
    let (other_token, _) = api.link(other, "patient").await;
    let good = claims_of(&token);
    let (key, kid) = server_key(&server);
    let typ = telesoin_core::claims::JOIN_TOKEN_TYPE;
    let now = Utc::now().timestamp();
    let jwks = api.get("/.well-known/jwks.json").await;
    let x = jwks["keys"][0]["x"].as_str().expect("x").to_owned();
    let public = URL_SAFE_NO_PAD.decode(&x).expect("x");
    let attacker = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let attacker_key = EncodingKey::from_ed_der(attacker.to_pkcs8_der().expect("der").as_bytes());
    let with = |f: &dyn Fn(&mut JoinClaims)| {
        let mut c = good.clone();
        f(&mut c);
        sign(&key, Some(&kid), Some(typ), &c)
    };
    let hs = |secret: &[u8]| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        h.typ = Some(typ.into());
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(secret)).expect("hs")
    };
    let sig_of = |t: &str| {
        URL_SAFE_NO_PAD
            .decode(t.split('.').nth(2).expect("sig"))
            .expect("sig")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        // The control: our own token with our key passes (checked below), so every refusal
        // here is about the one thing changed.
        (
            "alg none",
            assemble(json!({"alg": "none", "typ": typ, "kid": kid}), &good, b""),
            "token_invalid",
        ),
        (
            "alg None",
            assemble(json!({"alg": "None", "typ": typ, "kid": kid}), &good, b""),
            "token_invalid",
        ),
        (
            "alg none keeping the signature",
            assemble(
                json!({"alg": "none", "typ": typ, "kid": kid}),
                &good,
                &sig_of(&token),
            ),
            "token_invalid",
        ),
        (
            "HS256 keyed with the public key",
            hs(&public),
            "token_invalid",
        ),
        (
            "HS256 keyed with the JWK x",
            hs(x.as_bytes()),
            "token_invalid",
        ),
        (
            "HS256 keyed with the JWKS",
            hs(jwks.to_string().as_bytes()),
            "token_invalid",
        ),
        (
            "RS256 header on an EdDSA signature",
            assemble(
                json!({"alg": "RS256", "typ": typ, "kid": kid}),
                &good,
                &sig_of(&token),
            ),
            "token_invalid",
        ),
        (
            "typ JWT",
            sign(&key, Some(&kid), Some("JWT"), &good),
            "token_invalid",
        ),
        (
            "typ missing",
            sign(&key, Some(&kid), None, &good),
            "token_invalid",
        ),
        (
            "typ of another token kind",
            sign(&key, Some(&kid), Some("at+jwt"), &good),
            "token_invalid",
        ),
        (
            "unknown kid",
            sign(&key, Some("0011223344556677"), Some(typ), &good),
            "token_invalid",
        ),
        (
            "kid missing",
            sign(&key, None, Some(typ), &good),
            "token_invalid",
        ),
        (
            "kid path traversal",
            sign(&key, Some("../../../../etc/passwd"), Some(typ), &good),
            "token_invalid",
        ),
        (
            "our kid, attacker's key",
            sign(&attacker_key, Some(&kid), Some(typ), &good),
            "token_invalid",
        ),
        (
            "embedded jwk header",
            {
                let mut h = Header::new(Algorithm::EdDSA);
                h.typ = Some(typ.into());
                h.kid = Some(kid.clone());
                h.jwk = Some(
                    serde_json::from_value(json!({
                        "kty": "OKP", "crv": "Ed25519",
                        "x": b64(attacker.verifying_key().as_bytes())
                    }))
                    .expect("jwk"),
                );
                jsonwebtoken::encode(&h, &good, &attacker_key).expect("jwk token")
            },
            "token_invalid",
        ),
        (
            "expired",
            with(&|c| {
                c.nbf = now - 7200;
                c.exp = now - 120;
            }),
            "token_expired",
        ),
        (
            "not yet valid",
            with(&|c| {
                c.nbf = now + 3600;
                c.exp = now + 7200;
            }),
            "token_not_yet_valid",
        ),
        (
            "another audience",
            with(&|c| c.aud = "telesoin-api".into()),
            "token_invalid",
        ),
        (
            "another issuer",
            with(&|c| c.iss = "https://evil.example".into()),
            "token_invalid",
        ),
        (
            "another session, same seat",
            with(&|c| c.sid = other),
            "token_wrong_session",
        ),
        (
            "another role",
            with(&|c| c.role = Role::Kine),
            "token_wrong_role",
        ),
        (
            "unknown jti",
            with(&|c| c.jti = Uuid::new_v4()),
            "token_invalid",
        ),
        (
            "tampered claims, signature kept",
            {
                let mut parts: Vec<String> = token.split('.').map(String::from).collect();
                let mut c = good.clone();
                c.exp += 86_400 * 365;
                parts[1] = b64(&serde_json::to_vec(&c).expect("json"));
                parts.join(".")
            },
            "token_invalid",
        ),
        (
            "another session's token, this session's payload",
            {
                let mut parts: Vec<String> = other_token.split('.').map(String::from).collect();
                parts[1] = token.split('.').nth(1).expect("p").to_owned();
                parts.join(".")
            },
            "token_invalid",
        ),
        (
            "oversized",
            format!("{token}{}", "A".repeat(8192)),
            "token_invalid",
        ),
        ("two dots only", "..".into(), "token_invalid"),
        (
            "JSON serialization",
            json!({"payload": token}).to_string(),
            "token_invalid",
        ),
    ];
    for (name, forged, want) in &cases {
        let mut ws = Ws::join(server.port, forged).await;
        let m = ws.recv().await;
        assert_eq!(
            (m["type"].as_str(), m["code"].as_str()),
            (Some("refused"), Some(*want)),
            "{name}: {m}"
        );
        assert_eq!(ws.closed().await, 4001, "{name}");
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/api/join-info",
                Some(json!({"token": forged})),
            )
            .await;
        assert!((400..500).contains(&status), "{name}: {status} {body}");
        assert_eq!(
            body["code"].as_str(),
            Some(*want),
            "{name} (join-info): {body}"
        );
    }
    assert_eq!(
        api.record(session).await["events"],
        json!([]),
        "no forged token left a trace in the session"
    );
    // Revoked: the genuine token, once revoked, is dead.
    api.post(&format!("/api/links/{}/revoke", good.jti), json!({}))
        .await;
    let mut ws = Ws::join(server.port, &token).await;
    assert_eq!(ws.recv().await["code"], "token_revoked");
    // And the control: an untouched token of the other session still works.
    let (mut ok, _) = welcomed(server.port, &other_token).await;
    ok.until("waiting").await;
    server.stop().await;
}
