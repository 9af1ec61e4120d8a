//! V13 API and web services: webhook egress (SSRF) at registration and at connection, the
//! bearer-only `/api/v1` untouched by the dashboard's CSRF defences, malformed bodies.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use reqwest::Method;
use serde_json::json;
use telesoin_server::platform::auth::Scope;
use telesoin_store::WebhookEndpointRow;
use uuid::Uuid;

use crate::support::*;
use crate::v8_authorisation::{key, kine_id, platform, v1};

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused_in_every_notation() {
    let server = Server::start_with(|c| c.webhook_allow_http = true).await;
    let a = server.kine("ssrf@example.fr").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let (k, _) = key(&server, p, &[ka], &Scope::ALL).await;
    for url in [
        "https://127.0.0.1:8443/hook",
        "http://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.0.0.1/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://100.64.0.1/hook",
        "https://100.100.100.200/latest/meta-data/",
        "https://224.0.0.1/hook",
        "https://0.0.0.0/hook",
        "https://[::]/hook",
        "https://[fe80::1]/hook",
        "https://[fc00::1]/hook",
        // The same loopback and metadata addresses in other notations.
        "https://2130706433/hook",
        "https://0x7f000001/hook",
        "https://0x7f.1/hook",
        "https://0177.0.0.1/hook",
        "https://127.1/hook",
        "https://127.0.0.1./hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:7f00:1]/hook",
        "https://[::ffff:a9fe:a9fe]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",
        "https://2852039166/latest/meta-data/",
        // Names that resolve to loopback.
        "https://localhost/hook",
        "https://localhost./hook",
    ] {
        let (status, v) = v1(
            &server,
            &k,
            Method::POST,
            "/webhooks",
            Some(json!({"url": url})),
            &[],
        )
        .await;
        crate::assert_refusal(status, &v, 422, "invalid_input");
        assert_eq!(v["details"]["field"], "url", "{url}: {v}");
    }
    let (_, listed) = v1(&server, &k, Method::GET, "/webhooks", None, &[]).await;
    assert_eq!(listed, json!([]), "none was registered");
    // A public receiver is fine.
    let (status, v) = v1(
        &server,
        &k,
        Method::POST,
        "/webhooks",
        Some(json!({"url": "https://93.184.216.34/hook"})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{v}");
    server.stop().await;

    // The operator's allowlist opens exactly the networks it names.
    let server = Server::start_with(|c| {
        c.webhook_allow_http = true;
        c.webhook_allowed_networks = vec!["127.0.0.1/32".into()];
    })
    .await;
    let a = server.kine("ssrf@example.fr").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let (k, _) = key(&server, p, &[ka], &Scope::ALL).await;
    let (status, v) = v1(
        &server,
        &k,
        Method::POST,
        "/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, _) = v1(
        &server,
        &k,
        Method::POST,
        "/webhooks",
        Some(json!({"url": "http://127.0.0.2:9/hook"})),
        &[],
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = v1(
        &server,
        &k,
        Method::POST,
        "/webhooks",
        Some(json!({"url": "http://10.0.0.1/hook"})),
        &[],
    )
    .await;
    assert_eq!(status, 422);
    server.stop().await;
}

/// A receiver that counts requests and answers `status` (with a redirect to `location`).
async fn receiver(
    ip: &str,
    status: StatusCode,
    location: Option<String>,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().fallback(move || {
        let seen = seen.clone();
        let location = location.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            let mut res = axum::response::Response::new(axum::body::Body::empty());
            *res.status_mut() = status;
            if let Some(l) = location {
                res.headers_mut()
                    .insert("location", l.parse().expect("location"));
            }
            res
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

#[tokio::test]
async fn deliveries_recheck_the_resolved_address_and_never_follow_redirects() {
    // B: an internal service on 127.0.0.1 that must never be reached.
    let (internal, reached) = receiver("127.0.0.1", StatusCode::NO_CONTENT, None).await;
    let internal_port = internal
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .expect("port")
        .to_owned();
    // A: the platform's receiver (allowed on 127.0.0.2), which answers with a redirect to B.
    let (allowed, hits) = receiver(
        "127.0.0.2",
        StatusCode::TEMPORARY_REDIRECT,
        Some(format!("{internal}?via=redirect")),
    )
    .await;
    let server = Server::start_with(|c| {
        c.webhook_allow_http = true;
        c.webhook_allowed_networks = vec!["127.0.0.2/32".into()];
        c.webhook_retry_seconds = 1;
        c.webhook_timeout_seconds = 2;
    })
    .await;
    let a = server.kine("rebind@example.fr").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let (k, _) = key(&server, p, &[ka], &Scope::ALL).await;
    let (status, v) = v1(
        &server,
        &k,
        Method::POST,
        "/webhooks",
        Some(json!({"url": allowed})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{v}");
    // Endpoints that slipped past registration (stored before the policy, or a name that
    // resolved elsewhere then): a loopback literal, and names that now resolve to loopback.
    for url in [
        internal.clone(),
        format!("http://localhost:{internal_port}/hooks"),
        format!("http://2130706433:{internal_port}/hooks"),
    ] {
        server
            .state
            .store
            .create_webhook(&WebhookEndpointRow {
                id: Uuid::new_v4(),
                platform: p,
                url,
                secret: "whsec_test".into(),
                created_at: Utc::now(),
            })
            .await
            .expect("endpoint");
    }
    // An event for every endpoint.
    let patient = a.ready_patient().await;
    a.session(patient, json!({})).await;
    tokio::time::timeout(Duration::from_secs(20), async {
        while hits.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the allowed receiver got the events (and retries after its redirect)");
    // Give the forbidden endpoints the same time and a retry.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the internal service was never reached: not by literal, name, nor redirect"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_platform_api_stays_bearer_only_and_ignores_origin() {
    let server = Server::start().await;
    let a = server.kine("bearer@example.fr").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let (k, _) = key(&server, p, &[ka], &Scope::ALL).await;
    // A server-to-server call from anywhere, with no CSRF token: unaffected.
    let (status, v) = v1(
        &server,
        &k,
        Method::POST,
        &format!("/kines/{ka}/patients"),
        Some(json!({"display_name": "Mme Dupont", "birth_date": "1958-03-14"})),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(status, 201, "{v}");
    server.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_a_refusal_not_a_crash() {
    let server = Server::start().await;
    let a = server.kine("bodies@example.fr").await;
    let huge = format!(
        "{{\"display_name\": \"{}\", \"birth_date\": \"1958-03-14\"}}",
        "x".repeat(3 << 20)
    );
    let bodies: Vec<(&str, String)> = vec![
        ("application/json", "{".into()),
        ("application/json", "[]".into()),
        ("application/json", "null".into()),
        (
            "application/json",
            json!({"display_name": 5, "birth_date": "x"}).to_string(),
        ),
        (
            "application/json",
            json!({"display_name": "A", "birth_date": "1958-02-30"}).to_string(),
        ),
        (
            "application/json",
            json!({"display_name": "A\u{0000}B", "birth_date": "1958-03-14"}).to_string(),
        ),
        (
            "application/json",
            json!({"display_name": "'; DROP TABLE patients; --", "birth_date": "2999-01-01"})
                .to_string(),
        ),
        ("application/json", huge),
        ("text/plain", "display_name=A".into()),
    ];
    for (ct, body) in bodies {
        let res = a
            .http
            .post(format!("{}/api/patients", a.base))
            .header("cookie", &a.cookie)
            .header("origin", a.origin())
            .header("x-csrf-token", a.csrf())
            .header("content-type", ct)
            .body(body.clone())
            .send()
            .await
            .expect("post");
        let status = res.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{ct} {}: {status}",
            &body[..body.len().min(60)]
        );
    }
    assert_eq!(
        a.get("/api/patients").await,
        json!([]),
        "nothing was created"
    );
    server.stop().await;
}
