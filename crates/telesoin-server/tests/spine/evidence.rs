//! Billing from evidence only, through the real server: a hang-up is never bridged, a rejoin
//! after a hang-up goes straight to `admitted`, a crash right after the kiné's hang-up does not
//! over-bill (the client replays it with `ago_ms`), a crash nobody comes back from bills up to
//! the last persisted evidence, and heartbeats are persisted coarsely.
//!
//! "Observed" is the time both sides reported media with video, measured by the test around
//! its own messages; each test prints billed vs observed.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::process::Command;

use crate::restart::{free_port, spawn_with};
use crate::support::*;

fn video() -> serde_json::Value {
    json!({"type": "media", "state": "connected", "video_in": true, "video_out": true})
}

/// Both sides report video and the server has read the patient's report.
async fn both_video(k: &mut Ws, p: &mut Ws) -> Instant {
    k.send(video()).await;
    p.send(video()).await;
    p.send(json!({"type": "ping"})).await;
    p.until("pong").await;
    k.send(json!({"type": "ping"})).await;
    k.until("pong").await;
    Instant::now()
}

#[tokio::test]
async fn a_patient_hang_up_is_not_bridged_and_the_return_is_admitted_at_once() {
    // A grace far longer than the gap: the old rule bridged it.
    let server = Server::start_with(|c| c.grace_seconds = 60).await;
    let api = server.kine("hangup-gap@example.fr").await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, server.port).await;
    let pt = api.link(s, "patient").await.0;
    let first = both_video(&mut k, &mut p).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    p.send(json!({"type": "hangup"})).await;
    let (ack, _) = p.until("ended").await;
    let before_gap = first.elapsed().as_secs_f64();
    assert_eq!(ack["reason"], "hangup");
    assert_eq!(p.closed().await, 1000);
    let (left, _) = k.until("peer_left").await;
    assert_eq!(left["reconnecting"], false);

    // 3 s later (well inside the grace) the patient comes back with the same link: no lobby.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (mut p, w) = welcomed(server.port, &pt).await;
    assert_eq!(w["heartbeat_seconds"], 10);
    assert_eq!(
        p.recv().await["type"],
        "admitted",
        "admission, consent and attestation stand after a hang-up"
    );
    k.until("peer_joined").await;
    let second = both_video(&mut k, &mut p).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    k.send(json!({"type": "hangup"})).await;
    let after_gap = second.elapsed().as_secs_f64();
    let (ended, _) = p.until("ended").await;
    let billed = ended["billable_seconds"].as_i64().expect("seconds");
    let observed = before_gap + after_gap;
    eprintln!(
        "hang-up gap: billed {billed} s for {observed:.1} s observed (gap of ~3 s not billed)"
    );
    assert!(
        billed as f64 <= observed + 0.5 && billed as f64 >= observed - 1.5,
        "billed {billed} s for {observed:.1} s of observed video call"
    );
    let rec = api.record(s).await;
    let kinds: Vec<&str> = rec["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "waiting").count(),
        1,
        "only the first join waited in the lobby: {kinds:?}"
    );
    // The return is a new `joined`: nothing of a seat is recorded after its `left` but that.
    let left = kinds.iter().position(|k| *k == "left").expect("left");
    assert!(kinds[left + 1..].contains(&"joined"), "{kinds:?}");
    assert!(!kinds.contains(&"reconnected"), "{kinds:?}");
    server.stop().await;
}

#[tokio::test]
async fn audio_only_time_is_shown_not_billed() {
    let server = Server::start().await;
    let api = server.kine("audio-only@example.fr").await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, server.port).await;
    // The patient receives no video (the kiné's camera is off): audio only.
    k.send(video()).await;
    p.send(json!({"type": "media", "state": "connected", "video_in": false, "video_out": true}))
        .await;
    p.send(json!({"type": "ping"})).await;
    p.until("pong").await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    k.send(json!({"type": "hangup"})).await;
    let (ended, _) = p.until("ended").await;
    assert_eq!(
        ended["billable_seconds"], 0,
        "no video both ways: nothing billed"
    );
    let rec = api.record(s).await;
    let media: Vec<&str> = rec["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "media_connected")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert!(
        media.contains(&"connected,no_video_in,video_out"),
        "the video evidence is in the record: {media:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_leave_keeps_the_session_and_the_kine_may_return() {
    let server = Server::start().await;
    let api = server.kine("leave@example.fr").await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, server.port).await;
    let kt = api.link(s, "kine").await.0;
    k.send(json!({"type": "leave"})).await;
    let (ack, _) = k.until("ended").await;
    assert_eq!(ack["reason"], "leave");
    assert_eq!(k.closed().await, 1000);
    let (left, _) = p.until("peer_left").await;
    assert_eq!(left["reconnecting"], false);
    assert_eq!(
        api.record(s).await["status"],
        "live",
        "a leave does not end the session"
    );
    let (mut k, _) = welcomed(server.port, &kt).await;
    k.until("admitted").await;
    p.until("peer_joined").await;
    server.stop().await;
}

#[tokio::test]
async fn heartbeats_are_persisted_coarsely() {
    let server = Server::start_with(|c| c.heartbeat_seconds = 2).await;
    let api = server.kine("coarse@example.fr").await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, server.port).await;
    both_video(&mut k, &mut p).await;
    // A client reporting ten times a second for 3 s: nothing changes.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        p.send(video()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.send(json!({"type": "ping"})).await;
    p.until("pong").await;
    let rec = api.record(s).await;
    let beats = rec["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "media_heartbeat")
        .count();
    eprintln!("30 unchanged reports in 3 s, heartbeat 2 s: {beats} heartbeat rows");
    assert!(
        (2..=4).contains(&beats),
        "one row per half period at most (3 s / 1 s + 1), got {beats}"
    );
    server.stop().await;
}

async fn add_kine(dir: &std::path::Path, email: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_telesoin"))
        .args(["add-kine", "--email", email])
        .args([
            "--name",
            "Claire Martin",
            "--rpps",
            "10009999999",
            "--data-dir",
        ])
        .arg(dir)
        .env("TELESOIN_NEW_PASSWORD", PASSWORD)
        .status()
        .await
        .expect("add-kine");
    assert!(status.success());
}

fn api_at(port: u16) -> Api {
    Api {
        http: http(),
        base: format!("https://localhost:{port}"),
        cookie: String::new(),
    }
}

/// Issue 10, finding 1: kill -9 just after the kiné's `hangup`, then restart. The kiné's client
/// did not get its ack: it rejoins, says when its media ended and replays the hang-up with
/// `ago_ms`. Whether the server had written the hang-up or not, the record bills the call up to
/// the hang-up, not the downtime.
#[tokio::test]
async fn a_crash_right_after_the_kines_hangup_does_not_over_bill() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    add_kine(dir.path(), "crash-hangup@example.fr").await;
    let env = [("TELESOIN_HEARTBEAT_SECONDS", "2")];
    let mut server = spawn_with(dir.path(), port, &env).await;
    let api = api_at(port).login("crash-hangup@example.fr").await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, port).await;
    let kt = api.link(s, "kine").await.0;
    let pt = api.link(s, "patient").await.0;
    let connected = both_video(&mut k, &mut p).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        k.send(video()).await;
        p.send(video()).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    k.send(json!({"type": "hangup"})).await;
    let hung_up = Instant::now();
    let observed = (hung_up - connected).as_secs_f64();
    server.kill().await.expect("kill -9");
    drop((k, p));
    // Down for 4 s; then both clients find the server again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut server = spawn_with(dir.path(), port, &env).await;
    let lost_ago = |at: Instant| at.elapsed().as_millis() as u64;
    let mut k = Ws::open(port, None).await.expect("open");
    k.send(json!({"type": "join", "token": kt, "media_lost_ago_ms": lost_ago(hung_up)}))
        .await;
    let first = k.recv().await;
    let billed = if first["type"] == "welcome" {
        // The hang-up was lost in the crash: replayed, dated when it was made.
        k.until("admitted").await;
        k.send(json!({"type": "hangup", "ago_ms": lost_ago(hung_up)}))
            .await;
        let (ended, _) = k.until("ended").await;
        ended["billable_seconds"].as_i64().expect("seconds")
    } else {
        // The hang-up was written before the kill: the session is over, the replay settled.
        assert_eq!(first["code"], "session_ended", "{first}");
        api_at(port)
            .login("crash-hangup@example.fr")
            .await
            .record(s)
            .await["billable_seconds"]
            .as_i64()
            .expect("finalized")
    };
    let api = api_at(port).login("crash-hangup@example.fr").await;
    let rec = api.record(s).await;
    assert_eq!(rec["status"], "ended");
    assert_eq!(rec["billable_seconds"].as_i64(), Some(billed));
    eprintln!("kill -9 after the kiné's hang-up: billed {billed} s for {observed:.1} s observed");
    assert!(
        billed as f64 <= observed + 0.5 && billed as f64 >= observed - 1.5,
        "billed {billed} s for {observed:.1} s of observed call (4 s of downtime must not count)"
    );
    // The patient's link is dead: the session ended.
    let mut p = Ws::join(port, &pt).await;
    assert_eq!(p.recv().await["code"], "session_ended");
    server.kill().await.expect("kill");
}

/// A crash nobody comes back from: the record bills up to the last persisted evidence (within
/// one heartbeat period of the crash), not up to the restart or the end.
#[tokio::test]
async fn a_crash_nobody_returns_from_bills_up_to_the_last_evidence() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    add_kine(dir.path(), "crash-gone@example.fr").await;
    let env = [("TELESOIN_HEARTBEAT_SECONDS", "2")];
    let mut server = spawn_with(dir.path(), port, &env).await;
    let api = api_at(port).login("crash-gone@example.fr").await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, port).await;
    let connected = both_video(&mut k, &mut p).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        k.send(video()).await;
        p.send(video()).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let observed = connected.elapsed().as_secs_f64();
    server.kill().await.expect("kill -9");
    drop((k, p));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut server = spawn_with(dir.path(), port, &env).await;
    let api = api_at(port).login("crash-gone@example.fr").await;
    // Nobody rejoins; the kiné ends the session from the dashboard 2 s later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ended = api.post(&format!("/api/sessions/{s}/end"), json!({})).await;
    let billed = ended["billable_seconds"].as_i64().expect("seconds");
    eprintln!(
        "kill -9, nobody back: billed {billed} s for {observed:.1} s observed (5 s of downtime after)"
    );
    assert!(
        billed as f64 <= observed + 0.5,
        "billed {billed} s for {observed:.1} s: time without evidence was billed"
    );
    assert!(
        billed as f64 >= observed - 2.0 - 1.0,
        "billed {billed} s for {observed:.1} s: more than one heartbeat period lost"
    );
    server.kill().await.expect("kill");
}
