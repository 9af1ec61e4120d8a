//! A real WebRTC call: two telesoin-peer instances (webrtc-rs) get their links from the REST API,
//! are admitted, complete ICE + DTLS on loopback through the server's signaling, talk over a data
//! channel, survive a dropped socket, and hang up; the record bills the connected time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use telesoin_peer::{Peer, PeerConfig};

use crate::support::*;

fn peer_config(server: &Server, link: String) -> PeerConfig {
    PeerConfig {
        ca_pem: Some(
            std::fs::read(server.dir.path().join("tls/cert.pem")).expect("server certificate"),
        ),
        udp_bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..PeerConfig::new(link)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_complete_a_real_call_and_the_record_bills_it() {
    let server = Server::start_with(|c| c.grace_seconds = 10).await;
    let api = server.kine("call@example.fr").await;
    let patient = api.ready_patient().await;
    let session = api
        .session(patient, json!({"patient_consent_on_join": true}))
        .await;
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
    let t = Duration::from_secs(20);

    let mut kine = Peer::join(PeerConfig {
        auto_admit_lobby: true,
        ..peer_config(&server, kine_link)
    })
    .await
    .expect("kiné joins");
    kine.admitted(t).await.expect("kiné admitted");
    let mut pat = Peer::join(PeerConfig {
        consent: true,
        ..peer_config(&server, patient_link)
    })
    .await
    .expect("patient joins");
    pat.admitted(t).await.expect("patient admitted by the kiné");

    kine.wait_media_connected(t)
        .await
        .expect("kiné: ICE + DTLS connected, data channel open");
    pat.wait_media_connected(t)
        .await
        .expect("patient: ICE + DTLS connected, data channel open");
    let connected = Instant::now();
    kine.send_data("Bonjour Mme Dupont, on commence par le genou.")
        .await
        .expect("send");
    assert_eq!(
        pat.recv_data(t).await.expect("recv").text,
        "Bonjour Mme Dupont, on commence par le genou."
    );
    pat.send_data("Bonjour !").await.expect("send");
    assert_eq!(kine.recv_data(t).await.expect("recv").text, "Bonjour !");

    // The patient's socket drops; media stays up; the patient comes back inside the grace window
    // with the same link and the kiné restarts ICE.
    pat.close_socket_abruptly().await.expect("drop socket");
    pat.reconnect().await.expect("reconnect");
    pat.admitted(t).await.expect("seat kept");
    kine.wait_media_connected(t)
        .await
        .expect("still connected after the ICE restart");
    kine.send_data("Vous m'entendez ?").await.expect("send");
    assert_eq!(
        pat.recv_data(t).await.expect("recv").text,
        "Vous m'entendez ?"
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let billed = kine
        .hangup(t)
        .await
        .expect("hangup")
        .expect("ended with billable seconds");
    let elapsed = connected.elapsed().as_secs_f64();
    // Tolerance: the two peers report `connected` a few hundred milliseconds apart, and seconds
    // are whole: 2 s either way.
    assert!(
        (billed as f64 - elapsed).abs() <= 2.0,
        "billed {billed} s for {elapsed:.1} s connected"
    );
    let rec = api.record(session).await;
    assert_eq!(rec["status"], "ended");
    assert_eq!(rec["billable_seconds"].as_i64(), Some(billed));
    let kinds: Vec<&str> = rec["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for k in [
        "joined",
        "admitted",
        "media_connected",
        "socket_lost",
        "reconnected",
        "ended",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    pat.shutdown().await;
    kine.shutdown().await;
    server.stop().await;
}

/// telesoin-peer for a minor's side: consents in the name of the attested parent and attests
/// them by name; without a name, the attestation is refused (`companion_unnamed`) and the seat
/// keeps waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_for_a_minor_consents_as_the_named_parent_and_attests_them() {
    let server = Server::start().await;
    let api = server.kine("peer-minor@example.fr").await;
    let patient = api
        .patient(
            &birth_years_ago(11, 0),
            false,
            &[(&today_minus(20), "bilan")],
            false,
        )
        .await;
    let session = api
        .session(
            patient,
            json!({"patient_consent_on_join": true, "auto_admit": true}),
        )
        .await;
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
    let t = Duration::from_secs(20);
    let mut kine = Peer::join(peer_config(&server, link("kine").await))
        .await
        .expect("kiné joins");
    kine.admitted(t).await.expect("kiné admitted");

    // Unnamed: the consent for a minor is refused, nothing is recorded, the seat waits.
    let unnamed_link = link("patient").await;
    let mut unnamed = Peer::join(PeerConfig {
        consent: true,
        attest: Some(telesoin_proto::signal::Companion::Parent),
        ..peer_config(&server, unnamed_link)
    })
    .await
    .expect("joins");
    assert!(unnamed.welcome().session.minor);
    let code = unnamed
        .wait_state("an error", t, |s| {
            s.last_error.as_ref().map(|e| Ok(e.code.clone()))
        })
        .await
        .expect("refused consent");
    assert_eq!(code, "representative_consent_required");
    assert!(unnamed.state().admitted.is_none());
    drop(unnamed);

    let mut pat = Peer::join(PeerConfig {
        consent: true,
        attest: Some(telesoin_proto::signal::Companion::Parent),
        attest_name: Some("Sophie Petit".into()),
        attest_relation: Some("mère".into()),
        ..peer_config(&server, link("patient").await)
    })
    .await
    .expect("patient joins");
    pat.admitted(t)
        .await
        .expect("admitted once the parent consented and is attested");
    let file = api.get(&format!("/api/patients/{patient}")).await;
    assert_eq!(
        (
            file["consents"][0]["representative_name"].as_str(),
            file["consents"][0]["representative_relation"].as_str()
        ),
        (Some("Sophie Petit"), Some("mère"))
    );
    let rec = api.record(session).await;
    assert_eq!(
        rec["attestations"][0]["words"],
        "En présence de Sophie Petit (mère)"
    );
    kine.hangup(t).await.expect("hangup");
}
