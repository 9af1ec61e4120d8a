//! TURN through a real coturn on loopback: two relay-only peers connect with the credentials
//! from `welcome`; expired credentials get no relay.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use telesoin_core::ParticipantId;
use telesoin_peer::endpoint::{Endpoint, EndpointConfig, EndpointEvent, Side};
use telesoin_peer::{Peer, PeerConfig};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::support::*;

const SECRET: &str = "loopback-test-secret";

struct Coturn {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn free_udp_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts coturn on loopback for this test only (allow-loopback-peers is never for production).
async fn coturn() -> Option<Coturn> {
    let bin = ["/usr/bin/turnserver", "/usr/sbin/turnserver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(bin) = bin else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "coturn is required under CI (tests/run installs it)"
        );
        eprintln!("NOTE: coturn not installed; TURN tests skipped outside CI");
        return None;
    };
    let dir = tempfile::tempdir().expect("dir");
    let port = free_udp_port();
    let relay_min = 40_000 + (Uuid::new_v4().as_u128() % 20_000) as u16;
    let log = dir.path().join("turn.log");
    let child = Command::new(bin)
        .args([
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            "--allow-loopback-peers",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
        ])
        .arg(format!("--listening-port={port}"))
        .arg(format!("--min-port={relay_min}"))
        .arg(format!("--max-port={}", relay_min + 200))
        .args([
            "--use-auth-secret",
            &format!("--static-auth-secret={SECRET}"),
            "--realm=telesoin.test",
            "--fingerprint",
            "--simple-log",
            "--verbose",
        ])
        .arg(format!("--log-file={}", log.display()))
        .arg(format!(
            "--pidfile={}",
            dir.path().join("turn.pid").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn turnserver");
    // Ready when it listens on TCP too.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(Coturn {
                child,
                port,
                log,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("coturn did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_peers_connect_through_coturn_with_welcome_credentials() {
    let Some(mut turn) = coturn().await else {
        return;
    };
    let turn_url = format!("turn:127.0.0.1:{}?transport=udp", turn.port);
    let server = Server::start_with(|c| {
        c.turn_urls = vec![turn_url.clone()];
        c.turn_secret = Some(SECRET.into());
    })
    .await;
    let api = server.kine("turn@example.fr").await;
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({})).await;
    let kine_link = api
        .post(
            &format!("/api/sessions/{session}/links"),
            json!({"role": "kine"}),
        )
        .await["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let patient_link = api
        .post(
            &format!("/api/sessions/{session}/links"),
            json!({"role": "patient"}),
        )
        .await["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let cfg = |link: String| PeerConfig {
        ca_pem: Some(std::fs::read(server.dir.path().join("tls/cert.pem")).expect("cert")),
        udp_bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        relay_only: true,
        ..PeerConfig::new(link)
    };
    let t = Duration::from_secs(20);
    let mut kine = Peer::join(PeerConfig {
        auto_admit_lobby: true,
        ..cfg(kine_link)
    })
    .await
    .expect("kiné");
    let servers = &kine.welcome().ice_servers;
    let turn_entry = servers
        .iter()
        .find(|s| s.urls.contains(&turn_url))
        .expect("TURN in welcome");
    let username = turn_entry.username.clone().expect("username");
    let (expiry, who) = username.split_once(':').expect("expiry:participant");
    assert_eq!(who, kine.participant().to_string());
    let expiry: i64 = expiry.parse().expect("unix seconds");
    assert!(
        expiry > Utc::now().timestamp() && expiry <= Utc::now().timestamp() + 3 * 3600,
        "short-lived: until the window's end"
    );
    kine.admitted(t).await.expect("admitted");
    let mut pat = Peer::join(cfg(patient_link)).await.expect("patient");
    pat.admitted(t).await.expect("admitted");
    kine.wait_media_connected(t)
        .await
        .expect("connected through the relay");
    pat.wait_media_connected(t)
        .await
        .expect("connected through the relay");
    kine.send_data("par le relais").await.expect("send");
    assert_eq!(pat.recv_data(t).await.expect("recv").text, "par le relais");
    let log = std::fs::read_to_string(&turn.log).unwrap_or_default();
    assert!(
        log.contains(&pat.participant().to_string()),
        "coturn allocated for the patient's credential"
    );
    kine.hangup(t).await.expect("hangup");
    pat.shutdown().await;
    server.stop().await;
    let _ = turn.child.kill().await;
}

/// Gathers candidates with relay-only ICE and the given TURN credential for a few seconds.
async fn relay_candidates(port: u16, username: String, credential: String) -> Vec<String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink_seen = seen.clone();
    let sink: telesoin_peer::endpoint::EventSink = Arc::new(move |e| {
        if let EndpointEvent::Candidate(c) = e {
            sink_seen.lock().expect("lock").push(c.candidate);
        }
    });
    let config = EndpointConfig {
        ice_servers: vec![telesoin_proto::signal::IceServer {
            urls: vec![format!("turn:127.0.0.1:{port}?transport=udp")],
            username: Some(username),
            credential: Some(credential),
        }],
        relay_only: true,
        udp_bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        video: false,
    };
    let endpoint = Endpoint::new(&config, Side::Offerer, sink)
        .await
        .expect("endpoint");
    endpoint.offer(false).await.expect("offer");
    for _ in 0..40 {
        if seen
            .lock()
            .expect("lock")
            .iter()
            .any(|c| c.contains("typ relay"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    endpoint.close().await;
    let out = seen.lock().expect("lock").clone();
    out.into_iter()
        .filter(|c| c.contains("typ relay"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_turn_credentials_are_refused() {
    let Some(mut turn) = coturn().await else {
        return;
    };
    let p = ParticipantId(Uuid::new_v4());
    let (user, pass) =
        telesoin_server::turn::credential(SECRET, p, Utc::now() + chrono::Duration::minutes(5));
    assert!(
        !relay_candidates(turn.port, user, pass).await.is_empty(),
        "control: a valid credential gets a relay"
    );
    let (user, pass) =
        telesoin_server::turn::credential(SECRET, p, Utc::now() - chrono::Duration::seconds(30));
    assert!(
        relay_candidates(turn.port, user, pass).await.is_empty(),
        "an expired credential gets none"
    );
    let (user, _) =
        telesoin_server::turn::credential(SECRET, p, Utc::now() + chrono::Duration::minutes(5));
    assert!(
        relay_candidates(turn.port, user, "d3Jvbmc=".into())
            .await
            .is_empty(),
        "a wrong password gets none"
    );
    let _ = turn.child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_mode_sends_media_through_turn_only() {
    // Without TURN configured, privacy mode cannot be promised: refused at scheduling.
    let plain = Server::start().await;
    let api = plain.kine("noturn@example.fr").await;
    let p = api.ready_patient().await;
    let (status, body) = api
        .call(reqwest::Method::POST, "/api/sessions", Some(json!({"patient": p, "starts_at": Utc::now(), "act_code": "MEMBRE", "relay_only": true})))
        .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (422, Some("relay_only"))
    );
    plain.stop().await;

    let Some(mut turn) = coturn().await else {
        return;
    };
    let server = Server::start_with(|c| {
        c.turn_urls = vec![format!("turn:127.0.0.1:{}?transport=udp", turn.port)];
        c.turn_secret = Some(SECRET.into());
    })
    .await;
    let api = server.kine("privacy@example.fr").await;
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({"relay_only": true})).await;
    assert_eq!(
        api.get(&format!("/api/sessions/{session}")).await["relay_only"],
        true
    );
    let link = |role: &'static str| {
        let api = api.clone();
        async move {
            api.post(
                &format!("/api/sessions/{session}/links"),
                json!({"role": role}),
            )
            .await["url"]
                .as_str()
                .expect("url")
                .to_owned()
        }
    };
    // The peers ask for nothing special: the session's welcome imposes the relay.
    let cfg = |link: String| PeerConfig {
        ca_pem: Some(std::fs::read(server.dir.path().join("tls/cert.pem")).expect("cert")),
        udp_bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..PeerConfig::new(link)
    };
    let t = Duration::from_secs(20);
    let mut kine = Peer::join(PeerConfig {
        auto_admit_lobby: true,
        ..cfg(link("kine").await)
    })
    .await
    .expect("kiné");
    assert!(
        kine.welcome().relay_only,
        "welcome.ice_transport_policy is relay"
    );
    kine.admitted(t).await.expect("admitted");
    let mut pat = Peer::join(cfg(link("patient").await))
        .await
        .expect("patient");
    assert!(pat.welcome().relay_only);
    pat.admitted(t).await.expect("admitted");
    kine.wait_media_connected(t)
        .await
        .expect("connected through the relay");
    pat.wait_media_connected(t)
        .await
        .expect("connected through the relay");
    let log = std::fs::read_to_string(&turn.log).unwrap_or_default();
    for who in [kine.participant(), pat.participant()] {
        assert!(
            log.contains(&who.to_string()),
            "both sides allocated a relay"
        );
    }
    kine.hangup(t).await.expect("hangup");
    pat.shutdown().await;
    server.stop().await;
    let _ = turn.child.kill().await;
}
