//! V3 session management: cross-site request forgery from a same-site page, login throttling
//! and lockout, cookies, logout.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use telesoin_server::platform::auth::{Scope, new_key};
use telesoin_store::PlatformRow;
use uuid::Uuid;

use crate::assert_refusal;
use crate::support::*;

/// A request with exactly the given headers (plus the session cookie when `cookie` is set).
pub async fn raw(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, String)],
    body: Option<(&str, String)>,
) -> (u16, Value) {
    let mut req = api.http.request(method, format!("{}{path}", api.base));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some((ct, b)) = body {
        req = req.header("content-type", ct).body(b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A kiné with a patient (consent recorded), a session with a patient link, and a platform API
/// key: one of everything the no-body POST routes act on. Returns the routes.
pub struct Targets {
    pub routes: Vec<String>,
    session: Uuid,
    other: Uuid,
    patient: Uuid,
    token: String,
    platform: Uuid,
}

async fn targets(server: &Server, api: &Api) -> Targets {
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({})).await;
    let other = api.session(patient, json!({})).await;
    let (token, _) = api.link(session, "patient").await;
    let jti = claims_jti(&token);
    let consent = api.get(&format!("/api/patients/{patient}")).await["consents"][0]["id"]
        .as_str()
        .expect("consent")
        .to_owned();
    let platform = PlatformRow {
        id: Uuid::new_v4(),
        name: "agenda".into(),
        issuer: "https://agenda.example".into(),
        created_at: Utc::now(),
    };
    server
        .state
        .store
        .create_platform(&platform)
        .await
        .expect("platform");
    let kine: Uuid = serde_json::from_value(api.get("/api/me").await["id"].clone()).expect("id");
    let (_, key) = new_key(
        platform.id,
        vec![telesoin_core::KineId(kine)],
        &[Scope::PatientsRead],
        Utc::now(),
    );
    server.state.store.create_api_key(&key).await.expect("key");
    let routes = vec![
        format!("/api/sessions/{session}/cancel"),
        format!("/api/sessions/{other}/end"),
        format!("/api/consents/{consent}/withdraw"),
        format!("/api/links/{jti}/revoke"),
        format!("/api/platforms/{}/api-keys/{}/revoke", platform.id, key.id),
        "/api/logout".to_owned(),
    ];
    Targets {
        routes,
        session,
        other,
        patient,
        token,
        platform: platform.id,
    }
}

pub fn claims_jti(token: &str) -> Uuid {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("claims");
    serde_json::from_value(v["jti"].clone()).expect("jti")
}

/// Nothing the forged requests aimed at happened.
async fn nothing_changed(api: &Api, t: &Targets) {
    let (session, other, patient) = (t.session, t.other, t.patient);
    assert_eq!(api.get("/api/me").await["email"], "csrf@example.fr");
    let s = api.get(&format!("/api/sessions/{session}")).await;
    assert_eq!(s["status"], "scheduled", "{s}");
    let o = api.get(&format!("/api/sessions/{other}")).await;
    assert_eq!(o["status"], "scheduled", "{o}");
    let p = api.get(&format!("/api/patients/{patient}")).await;
    assert!(p["consents"][0]["withdrawn_at"].is_null(), "{p}");
    let (status, preview) = api
        .call(
            reqwest::Method::POST,
            "/api/join-info",
            Some(json!({"token": t.token})),
        )
        .await;
    assert_eq!(status, 200, "the link still works: {preview}");
    let keys = api
        .get(&format!("/api/platforms/{}/api-keys", t.platform))
        .await;
    assert!(keys[0]["revoked_at"].is_null(), "{keys}");
}

#[tokio::test]
async fn a_same_site_page_cannot_post_to_the_dashboard() {
    let server = Server::start().await;
    let api = server.kine("csrf@example.fr").await;
    let t = targets(&server, &api).await;
    // The attacker's page on another port of the same host (same site, other origin), on a
    // sibling subdomain, or a sandboxed frame (Origin: null); a form POST carries the cookie.
    let sibling_port = format!("https://localhost:{}", server.port + 1);
    let forged: Vec<Vec<(&str, String)>> = vec![
        vec![("origin", sibling_port.clone())],
        vec![("origin", "https://evil.localhost".into())],
        vec![("origin", "null".into())],
        vec![("sec-fetch-site", "same-site".into())],
        vec![("referer", format!("{sibling_port}/attack.html"))],
        // No Origin, no Sec-Fetch-Site, no Referer: not a browser on our page.
        vec![],
        // Even with the right token, a foreign Origin is refused.
        vec![
            ("origin", sibling_port.clone()),
            ("x-csrf-token", api.csrf()),
        ],
    ];
    for route in &t.routes {
        for headers in &forged {
            let (status, body) = raw(
                &api,
                reqwest::Method::POST,
                route,
                Some(&api.cookie),
                headers,
                Some(("application/x-www-form-urlencoded", "a=1".into())),
            )
            .await;
            assert_refusal(status, &body, 403, "cross_site_request");
        }
    }
    // JSON routes too, and the login (login CSRF).
    let (status, body) = raw(
        &api,
        reqwest::Method::POST,
        "/api/patients",
        Some(&api.cookie),
        &[("origin", sibling_port.clone())],
        Some((
            "application/json",
            json!({"display_name": "X", "birth_date": "1950-01-01"}).to_string(),
        )),
    )
    .await;
    assert_refusal(status, &body, 403, "cross_site_request");
    let (status, body) = raw(
        &api,
        reqwest::Method::PUT,
        "/api/settings",
        Some(&api.cookie),
        &[("origin", sibling_port.clone())],
        Some(("application/json", json!({}).to_string())),
    )
    .await;
    assert_refusal(status, &body, 403, "cross_site_request");
    let (status, body) = raw(
        &api,
        reqwest::Method::POST,
        "/api/login",
        None,
        &[("origin", sibling_port)],
        Some((
            "application/json",
            json!({"email": "csrf@example.fr", "password": PASSWORD}).to_string(),
        )),
    )
    .await;
    assert_refusal(status, &body, 403, "cross_site_request");
    nothing_changed(&api, &t).await;
    server.stop().await;
}

#[tokio::test]
async fn the_csrf_token_is_required_and_bound_to_the_session() {
    let server = Server::start().await;
    let api = server.kine("csrf@example.fr").await;
    let t = targets(&server, &api).await;
    let origin = api.origin();
    // Another session of the same kiné (another browser), and another kiné.
    let second = api.clone().login("csrf@example.fr").await;
    let mallory = server.kine("mallory@example.fr").await;
    assert_ne!(second.csrf(), api.csrf());
    let session_cookie = api
        .cookie
        .split("; ")
        .find(|c| c.starts_with("telesoin_session="))
        .expect("session")
        .to_owned();
    let cases: Vec<(&str, String, Vec<(&str, String)>)> = vec![
        ("no token", api.cookie.clone(), vec![]),
        (
            "empty token",
            api.cookie.clone(),
            vec![("x-csrf-token", String::new())],
        ),
        (
            "another session's token",
            api.cookie.clone(),
            vec![("x-csrf-token", second.csrf())],
        ),
        (
            "another kiné's token",
            api.cookie.clone(),
            vec![("x-csrf-token", mallory.csrf())],
        ),
        (
            // Cookie tossing from a sibling subdomain: a planted csrf cookie and the same header.
            "planted double-submit cookie",
            format!("{session_cookie}; telesoin_csrf=planted"),
            vec![("x-csrf-token", "planted".into())],
        ),
        (
            "the session cookie itself",
            api.cookie.clone(),
            vec![(
                "x-csrf-token",
                session_cookie
                    .trim_start_matches("telesoin_session=")
                    .into(),
            )],
        ),
    ];
    for route in &t.routes {
        for (name, cookie, extra) in &cases {
            let mut headers = vec![("origin", origin.clone())];
            headers.extend(extra.iter().cloned());
            let (status, body) = raw(
                &api,
                reqwest::Method::POST,
                route,
                Some(cookie),
                &headers,
                None,
            )
            .await;
            assert_eq!(body["code"], "csrf_token_invalid", "{route} {name}: {body}");
            assert_refusal(status, &body, 403, "csrf_token_invalid");
        }
    }
    nothing_changed(&api, &t).await;
    // The right token from the right origin works (as the dashboard's own requests do), and a
    // browser without Origin but with Sec-Fetch-Site: same-origin is accepted.
    let (status, _) = raw(
        &api,
        reqwest::Method::POST,
        &t.routes[0],
        Some(&api.cookie),
        &[
            ("sec-fetch-site", "same-origin".into()),
            ("x-csrf-token", api.csrf()),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "cancel with the token");
    // Logout with the token ends the session: its cookie and token are dead.
    let (status, _) = api.call(reqwest::Method::POST, "/api/logout", None).await;
    assert_eq!(status, 204);
    let (status, body) = api.call(reqwest::Method::GET, "/api/me", None).await;
    assert_refusal(status, &body, 401, "unauthenticated");
    assert_eq!(
        second.get("/api/me").await["email"],
        "csrf@example.fr",
        "the other session lives on"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_login_cookies_are_locked_down() {
    let server = Server::start().await;
    let api = server.kine("cookies@example.fr").await;
    let res = api
        .http
        .post(format!("{}/api/login", api.base))
        .header("origin", api.origin())
        .json(&json!({"email": "cookies@example.fr", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let set: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    let find = |name: &str| {
        set.iter()
            .find(|c| c.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {set:?}"))
            .clone()
    };
    for c in [find("telesoin_session="), find("telesoin_device=")] {
        assert!(
            c.contains("HttpOnly") && c.contains("Secure") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
    assert_eq!(
        set.len(),
        2,
        "no other cookie (the CSRF token is never one): {set:?}"
    );
    // The token comes in a response header (a page on another port of this host can read
    // cookies, not our responses), the same from /api/me for a reloaded page.
    let token = res.headers()["x-csrf-token"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let session = find("telesoin_session=");
    let session = session.split(';').next().expect("pair");
    let me = api
        .http
        .get(format!("{}/api/me", api.base))
        .header("cookie", session)
        .send()
        .await
        .expect("me");
    assert_eq!(me.headers()["x-csrf-token"], token.as_str());
    assert!(
        find("telesoin_device=").contains("Path=/api/login"),
        "the device cookie goes to the login only"
    );
    server.stop().await;
}

async fn attempt(
    api: &Api,
    email: &str,
    password: &str,
    device: Option<&str>,
) -> (u16, Value, Option<u64>) {
    attempt_from(api, email, password, device, None).await
}

/// A login attempt; `from` is the client address a trusted proxy names in X-Forwarded-For.
async fn attempt_from(
    api: &Api,
    email: &str,
    password: &str,
    device: Option<&str>,
    from: Option<&str>,
) -> (u16, Value, Option<u64>) {
    let mut req = api
        .http
        .post(format!("{}/api/login", api.base))
        .header("origin", api.origin())
        .json(&json!({"email": email, "password": password}));
    if let Some(ip) = from {
        // What a client might forge, then what the proxy appends.
        req = req.header("x-forwarded-for", format!("203.0.113.77, {ip}"));
    }
    if let Some(d) = device {
        req = req.header("cookie", d);
    }
    let res = req.send().await.expect("login");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        retry,
    )
}

async fn actions(server: &Server) -> Vec<(String, String, String)> {
    server
        .state
        .store
        .audit_rows()
        .await
        .expect("audit")
        .into_iter()
        .map(|r| (r.action, r.subject, r.detail))
        .collect()
}

#[tokio::test]
async fn password_guessing_is_slowed_then_locked_briefly_and_audited() {
    let server = Server::start_with(|c| {
        c.login_max_failures = 4;
        // Long enough that a loaded machine (argon2 in a debug build) does not outlive it.
        c.login_lockout_seconds = 8;
    })
    .await;
    let api = server.kine("guess@example.fr").await;
    let email = "guess@example.fr";
    // The review's attack: 50 wrong passwords as fast as possible, then the right one.
    let mut statuses = Vec::new();
    for i in 0..50 {
        statuses.push(attempt(&api, email, &format!("wrong {i}"), None).await.0);
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 3,
        "back-off: only the first failures are even checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let (status, body, retry) = attempt(&api, email, PASSWORD, None).await;
    assert_refusal(status, &body, 429, "login_throttled");
    let retry = retry.expect("Retry-After");
    assert!((1..=8).contains(&retry), "{retry}");
    assert_eq!(body["details"]["retry_after_seconds"], retry);

    // Waiting as told, two more failures reach the limit (4): a lock of login_lockout_seconds.
    let mut failures = 0;
    for _ in 0..10 {
        let (status, _, retry) = attempt(&api, email, "still wrong", None).await;
        if status == 401 {
            failures += 1;
            if failures == 2 {
                break;
            }
        } else {
            assert_eq!(status, 429);
            tokio::time::sleep(Duration::from_secs(retry.expect("Retry-After"))).await;
        }
    }
    assert_eq!(failures, 2);
    let audit = actions(&server).await;
    assert!(
        audit.iter().any(|(a, _, _)| a == "login.locked"),
        "the account locked: {audit:?}"
    );
    let (status, _, retry) = attempt(&api, email, PASSWORD, None).await;
    assert_eq!(
        status, 429,
        "the right password is not even checked while locked"
    );
    // The lock is short: after it, the right password works.
    tokio::time::sleep(Duration::from_secs(retry.expect("retry"))).await;
    let (status, body, _) = attempt(&api, email, PASSWORD, None).await;
    assert_eq!(status, 200, "{body}");
    let audit = actions(&server).await;
    assert!(audit.iter().filter(|(a, _, _)| a == "login.failed").count() >= 4);
    let lock = audit
        .iter()
        .find(|(a, _, _)| a == "login.locked")
        .expect("lock audited");
    assert!(
        lock.2.contains("scope=account") && lock.2.contains("seconds=8"),
        "{lock:?}"
    );
    assert!(lock.1.starts_with("kine:"), "{lock:?}");
    assert!(
        audit
            .iter()
            .all(|(_, s, d)| !s.contains('@') && !d.contains('@')),
        "no e-mail address in the audit chain"
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_accounts_are_throttled_alike_and_addresses_across_accounts() {
    let server = Server::start_with(|c| {
        c.login_max_failures = 3;
        c.login_address_max_failures = 6;
        c.login_lockout_seconds = 30;
        // The tests' loopback client stands for a reverse proxy.
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let api = server.kine("known@example.fr").await;
    // The same sequence of answers whether the account exists or not (each from its own
    // client address, so that only the account key differs).
    let mut seqs = Vec::new();
    for (email, ip) in [
        ("known@example.fr", "198.51.100.1"),
        ("nobody@example.fr", "198.51.100.2"),
    ] {
        let mut seq = Vec::new();
        for _ in 0..3 {
            let (s, b, _) = attempt_from(&api, email, "wrong", None, Some(ip)).await;
            seq.push((s, b["code"].as_str().unwrap_or_default().to_owned()));
        }
        seqs.push(seq);
    }
    assert_eq!(seqs[0], seqs[1], "no account enumeration by throttling");
    assert_eq!(seqs[0][0], (401, "bad_credentials".to_owned()));
    assert_eq!(seqs[0][2], (429, "login_throttled".to_owned()));
    // Password spraying from one address: one failure per account, the address slows down
    // then locks, across accounts; another address is not affected.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let (status, _, retry) = attempt_from(
            &api,
            &format!("spray{i}@example.fr"),
            "Summer2026!",
            None,
            Some("198.51.100.9"),
        )
        .await;
        statuses.push(status);
        if status == 429 && retry.is_some_and(|r| r >= 29) {
            break;
        }
        if let Some(r) = retry.filter(|r| *r < 29) {
            tokio::time::sleep(Duration::from_secs(r)).await;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "the address is locked across accounts: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        6,
        "six failures checked, then the lock: {statuses:?}"
    );
    let (status, _, _) =
        attempt_from(&api, "known2@example.fr", "x", None, Some("198.51.100.10")).await;
    assert_eq!(status, 401, "another client address is not locked");
    server.stop().await;
}

#[tokio::test]
async fn an_attacker_cannot_lock_a_kine_out_of_a_browser_they_used_before() {
    let server = Server::start_with(|c| {
        c.login_max_failures = 3;
        c.login_lockout_seconds = 60;
    })
    .await;
    let api = server.kine("victim@example.fr").await;
    // The kiné's browser logged in before: it holds the device cookie.
    let res = api
        .http
        .post(format!("{}/api/login", api.base))
        .header("origin", api.origin())
        .json(&json!({"email": "victim@example.fr", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let device = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("telesoin_device="))
        .expect("device cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    // The attacker locks the account from elsewhere, waiting out the back-off as told.
    let mut locked = false;
    for _ in 0..10 {
        let (status, _, retry) = attempt(&api, "victim@example.fr", "guess", None).await;
        match retry {
            Some(r) if r >= 50 => {
                locked = true;
                break;
            }
            Some(r) => tokio::time::sleep(Duration::from_secs(r)).await,
            None => assert_eq!(status, 401),
        }
    }
    assert!(locked, "the account locked");
    let (status, _, _) = attempt(&api, "victim@example.fr", PASSWORD, None).await;
    assert_eq!(status, 429, "locked for everyone else");
    // The kiné's own browser still gets in.
    let (status, body, _) = attempt(&api, "victim@example.fr", PASSWORD, Some(&device)).await;
    assert_eq!(status, 200, "{body}");
    // A forged or other account's device cookie does not help.
    let forged = format!("{device}x");
    let (status, _, _) = attempt(&api, "victim@example.fr", PASSWORD, Some(&forged)).await;
    assert_eq!(status, 429);
    server.stop().await;
}
