//! V8 authorisation across the platform boundary: a platform's API key reaches the kinés that
//! gave it access, within its scopes, and nothing of another platform; cookies and bearer keys
//! never stand in for each other.

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};
use telesoin_core::KineId;
use telesoin_server::platform::auth::{Scope, new_key};
use telesoin_store::PlatformRow;
use uuid::Uuid;

use crate::support::*;

pub async fn platform(server: &Server, name: &str) -> Uuid {
    let row = PlatformRow {
        id: Uuid::new_v4(),
        name: name.into(),
        issuer: format!("https://{name}.example"),
        created_at: Utc::now(),
    };
    server
        .state
        .store
        .create_platform(&row)
        .await
        .expect("platform");
    row.id
}

pub async fn key(
    server: &Server,
    platform: Uuid,
    kines: &[Uuid],
    scopes: &[Scope],
) -> (String, Uuid) {
    let (key, row) = new_key(
        platform,
        kines.iter().map(|k| KineId(*k)).collect(),
        scopes,
        Utc::now(),
    );
    server.state.store.create_api_key(&row).await.expect("key");
    (key, row.id)
}

pub async fn kine_id(api: &Api) -> Uuid {
    serde_json::from_value(api.get("/api/me").await["id"].clone()).expect("id")
}

/// `/api/v1` with a bearer key and whatever extra headers.
pub async fn v1(
    server: &Server,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http()
        .request(method, format!("{}/api/v1{path}", server.base))
        .header("authorization", format!("Bearer {key}"));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("v1");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn a_key_reaches_its_own_kines_within_its_scopes_only() {
    let server = Server::start().await;
    let a = server.kine("a@example.fr").await;
    let b = server.kine("b@example.fr").await;
    let (ka, kb) = (kine_id(&a).await, kine_id(&b).await);
    let pb = b.ready_patient().await;
    let sb = b.session(pb, json!({})).await;
    let p1 = platform(&server, "agenda").await;
    let p2 = platform(&server, "rival").await;
    let (all_a, _) = key(&server, p1, &[ka], &Scope::ALL).await;
    let (read_a, _) = key(&server, p1, &[ka], &[Scope::PatientsRead]).await;
    let (rival, _) = key(&server, p2, &[kb], &Scope::ALL).await;

    // Kiné B's objects through a key that names only A.
    for (method, path, body) in [
        (Method::GET, format!("/kines/{kb}/patients"), None),
        (Method::GET, format!("/kines/{kb}/patients/{pb}"), None),
        (Method::GET, format!("/kines/{kb}/sessions/{sb}"), None),
        (
            Method::POST,
            format!("/kines/{kb}/sessions/{sb}/cancel"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/kines/{kb}/sessions/{sb}/links"),
            Some(json!({"role": "patient"})),
        ),
        (
            Method::GET,
            format!("/kines/{kb}/sessions/{sb}/record"),
            None,
        ),
        // B's ids under A's path: the object must belong to the kiné in the path.
        (Method::GET, format!("/kines/{ka}/patients/{pb}"), None),
        (Method::GET, format!("/kines/{ka}/sessions/{sb}"), None),
        (
            Method::POST,
            format!("/kines/{ka}/sessions/{sb}/end"),
            Some(json!({})),
        ),
    ] {
        let (status, v) = v1(&server, &all_a, method.clone(), &path, body, &[]).await;
        assert!(
            status == 403 || status == 404,
            "{method} {path}: {status} {v}"
        );
    }
    assert_eq!(
        b.get(&format!("/api/sessions/{sb}")).await["status"],
        "scheduled"
    );
    // Scopes: a read key cannot write.
    let (status, v) = v1(
        &server,
        &read_a,
        Method::POST,
        &format!("/kines/{ka}/patients"),
        Some(json!({"display_name": "X", "birth_date": "1950-01-01"})),
        &[],
    )
    .await;
    crate::assert_refusal(status, &v, 403, "scope_missing");
    // Webhooks of another platform: invisible and untouchable.
    let (status, hook) = v1(
        &server,
        &rival,
        Method::POST,
        "/webhooks",
        Some(json!({"url": "https://93.184.216.34/in"})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let (_, listed) = v1(&server, &all_a, Method::GET, "/webhooks", None, &[]).await;
    assert_eq!(listed, json!([]));
    let (status, _) = v1(
        &server,
        &all_a,
        Method::POST,
        &format!("/webhooks/{}/delete", hook["id"].as_str().expect("id")),
        Some(json!({})),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    let (_, still) = v1(&server, &rival, Method::GET, "/webhooks", None, &[]).await;
    assert_eq!(still.as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn cookies_and_bearer_keys_never_stand_in_for_each_other() {
    let server = Server::start().await;
    let a = server.kine("a@example.fr").await;
    let ka = kine_id(&a).await;
    let p1 = platform(&server, "agenda").await;
    let (key_a, key_id) = key(&server, p1, &[ka], &Scope::ALL).await;
    // The dashboard cookie on /api/v1: no.
    let res = http()
        .get(format!("{}/api/v1/kines/{ka}/patients", server.base))
        .header("cookie", &a.cookie)
        .send()
        .await
        .expect("v1");
    assert_eq!(res.status(), 401);
    // A bearer key on the dashboard: no.
    let res = http()
        .get(format!("{}/api/patients", server.base))
        .header("authorization", format!("Bearer {key_a}"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(res.status(), 401);
    // A key revoked from the dashboard is dead at once; another kiné neither sees nor revokes it.
    let b = server.kine("b@example.fr").await;
    assert_eq!(
        b.get(&format!("/api/platforms/{p1}/api-keys")).await,
        json!([])
    );
    let (status, _) = b
        .call(
            Method::POST,
            &format!("/api/platforms/{p1}/api-keys/{key_id}/revoke"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = v1(
        &server,
        &key_a,
        Method::GET,
        &format!("/kines/{ka}/patients"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = a
        .call(
            Method::POST,
            &format!("/api/platforms/{p1}/api-keys/{key_id}/revoke"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, v) = v1(
        &server,
        &key_a,
        Method::GET,
        &format!("/kines/{ka}/patients"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 401, "{v}");
    // A key that is not a key.
    let (status, _) = v1(
        &server,
        "tsk_forged",
        Method::GET,
        &format!("/kines/{ka}/patients"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 401);
    server.stop().await;
}
