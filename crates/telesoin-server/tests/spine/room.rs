//! The call room's server side: the kiné opens the room early (hours before the window) and the
//! patient still waits for the window; `display-capture` is open on the kiné's page only.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_kine_opens_the_room_early_the_patient_waits_for_the_window() {
    let server = Server::start().await;
    let api = server.kine("early@example.fr").await;
    let patient = api.ready_patient().await;
    // Three hours ahead: far before the window (15 min before the start by default).
    let session = api
        .session_at(patient, Utc::now() + Duration::hours(3), json!({}))
        .await;
    let (kt, _) = api.link(session, "kine").await;
    let (mut k, w) = welcomed(server.port, &kt).await;
    assert_eq!(w["role"], "kine");
    let (admitted, _) = k.until("admitted").await;
    assert_eq!(admitted["type"], "admitted");

    // The patient's link is not active yet, whoever is in the room.
    let (pt, _) = api.link(session, "patient").await;
    let mut p = Ws::join(server.port, &pt).await;
    let r = p.recv().await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str()),
        (Some("refused"), Some("token_not_yet_valid")),
        "{r}"
    );
    let info = http()
        .post(format!("{}/api/join-info", api.base))
        .json(&json!({"token": pt}))
        .send()
        .await
        .expect("join-info");
    assert_eq!(info.status().as_u16(), 403);

    // The kiné's early visit neither ends nor cancels the session.
    drop(k);
    let s = api.get(&format!("/api/sessions/{session}")).await;
    assert!(
        s["status"] == "scheduled" || s["status"] == "live",
        "still open: {s}"
    );
    // And the kiné may come back.
    let (kt2, _) = api.link(session, "kine").await;
    let (mut k2, _) = welcomed(server.port, &kt2).await;
    k2.until("admitted").await;
    server.stop().await;
}

#[tokio::test]
async fn display_capture_is_open_on_the_kine_page_only() {
    let server = Server::start().await;
    let client = http();
    let policy = |path: &'static str| {
        let client = client.clone();
        let url = format!("{}{path}", server.base);
        async move {
            let res = client.get(url).send().await.expect("get");
            res.headers()["permissions-policy"]
                .to_str()
                .expect("ascii")
                .to_owned()
        }
    };
    assert!(policy("/app").await.contains("display-capture=(self)"));
    for path in ["/j", "/embed/", "/healthz"] {
        let p = policy(path).await;
        assert!(p.contains("display-capture=()"), "{path}: {p}");
    }
    server.stop().await;
}
