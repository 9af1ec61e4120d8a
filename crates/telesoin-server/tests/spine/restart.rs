//! The real binary, killed mid-call (SIGKILL) and started again on the same data directory.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::*;

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn spawn(dir: &std::path::Path, port: u16) -> Child {
    spawn_with(dir, port, &[]).await
}

/// The binary on `dir`, listening on `port`, with extra `TELESOIN_*` variables.
pub(crate) async fn spawn_with(dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_telesoin"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("TELESOIN_GRACE_SECONDS", "20")
        .env("TELESOIN_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn telesoin");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("listening on") {
                return;
            }
        }
        panic!("telesoin exited before listening");
    })
    .await
    .expect("server started in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

#[tokio::test]
async fn killed_mid_call_then_restarted_keeps_events_and_finalizes_once() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let status = Command::new(env!("CARGO_BIN_EXE_telesoin"))
        .args([
            "add-kine",
            "--email",
            "restart@example.fr",
            "--name",
            "Claire Martin",
            "--rpps",
            "10009999999",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("TELESOIN_NEW_PASSWORD", PASSWORD)
        .status()
        .await
        .expect("add-kine");
    assert!(status.success());
    let mut server = spawn(dir.path(), port).await;
    let api = Api {
        http: http(),
        base: format!("https://localhost:{port}"),
        cookie: String::new(),
    }
    .login("restart@example.fr")
    .await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, port).await;
    let kt = api.link(s, "kine").await.0;
    let pt = api.link(s, "patient").await.0;
    k.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    p.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    p.send(json!({"type": "ping"})).await;
    p.until("pong").await;
    let call_started = std::time::Instant::now();
    let before = api.record(s).await["events"]
        .as_array()
        .expect("events")
        .clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    server.kill().await.expect("kill -9");
    drop((k, p));
    let mut server = spawn(dir.path(), port).await;

    // Both come back with the same links: their admission survived the crash.
    let (mut k, w) = welcomed(port, &kt).await;
    assert_eq!(w["resumed"], true);
    assert_eq!(k.recv().await["type"], "admitted");
    let (mut p, w) = welcomed(port, &pt).await;
    assert_eq!(w["resumed"], true);
    assert_eq!(
        p.recv().await["type"],
        "admitted",
        "no second admission after a server restart"
    );
    k.until("peer_joined").await;
    k.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    p.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    k.send(json!({"type": "hangup"})).await;
    let total = call_started.elapsed().as_secs_f64();
    let (ended, _) = p.until("ended").await;
    let billed = ended["billable_seconds"].as_i64().expect("seconds");

    let rec = api.record(s).await;
    let events = rec["events"].as_array().expect("events");
    assert_eq!(
        &events[..before.len()],
        &before[..],
        "every event persisted before the crash is intact and in order"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["kind"] == "node_restart")
            .count(),
        1
    );
    assert!(
        rec["incidents"]
            .as_array()
            .expect("incidents")
            .iter()
            .any(|e| e["kind"] == "node_restart"),
        "the restart is a recorded incident"
    );
    // Media is peer to peer and kept flowing while the server was down: the whole call counts.
    assert!(
        (billed as f64 - total).abs() <= 1.5,
        "billed {billed} s for a {total:.1} s call"
    );
    assert_eq!(rec["billable_seconds"].as_i64(), Some(billed));

    // Restart once more: finalization is not repeated.
    server.kill().await.expect("kill");
    let mut server = spawn(dir.path(), port).await;
    let api = api.login("restart@example.fr").await;
    let again = api.record(s).await;
    assert_eq!(
        (again["billable_seconds"].as_i64(), &again["finalized_at"]),
        (Some(billed), &rec["finalized_at"])
    );
    assert_eq!(
        again["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["kind"] == "ended")
            .count(),
        1
    );
    let (code, _) = crate::refused_code(port, &pt).await;
    assert_eq!(code, "session_ended");
    server.kill().await.expect("kill");
}
