//! Whole `Peer`s against the stand-in hub: join, waiting room, admission, the kiné's offer,
//! media and data, a dropped socket with reconnection and ICE restart, hangup and `ended`.

use std::net::SocketAddr;
use std::time::Duration;

use telesoin_peer::wire::{RelayPayload, SessionDescription};
use telesoin_peer::{Peer, PeerConfig, PeerError};
use telesoin_proto::signal::{MediaState, Role, ServerMsg, WaitReason};

use crate::hub::{self, Hub};

const T: Duration = Duration::from_secs(20);

fn config(base: &str, token: &str) -> PeerConfig {
    PeerConfig {
        udp_bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..PeerConfig::new(format!("{base}/j#{token}"))
    }
}

fn offer_ufrag(msg: &ServerMsg) -> String {
    let ServerMsg::Offer { data, .. } = msg else {
        panic!("not an offer")
    };
    let offer = SessionDescription::from_data(data).expect("an offer");
    offer
        .sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .expect("ufrag")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_call_with_a_dropped_socket_and_ice_restart() {
    let (hub, base) = Hub::start_plain().await;

    let mut patient = Peer::join(PeerConfig {
        consent: true,
        ..config(&base, hub::PATIENT_TOKEN)
    })
    .await
    .expect("patient joins");
    assert_eq!(patient.role(), Role::Patient);
    assert_eq!(patient.participant(), hub.patient);
    // Consent is given by itself; then the patient waits for the kiné.
    patient
        .wait_for("kine_absent", T, |m| {
            matches!(
                m,
                ServerMsg::Waiting {
                    reason: WaitReason::KineAbsent
                }
            )
        })
        .await
        .expect("waits for the kiné");

    let mut kine = Peer::join(PeerConfig {
        auto_admit_lobby: true,
        origin: Some("https://app.example".into()),
        ..config(&base, hub::KINE_TOKEN)
    })
    .await
    .expect("kiné joins");
    kine.admitted(T).await.expect("the kiné is admitted");
    let peers = patient
        .admitted(T)
        .await
        .expect("auto-admitted by the kiné");
    assert!(peers.iter().any(|p| p.role == Role::Kine));
    // The messages the state helpers looked at are still queued, in order.
    patient
        .wait_for("consent_required", T, |m| {
            matches!(
                m,
                ServerMsg::Waiting {
                    reason: WaitReason::ConsentRequired
                }
            )
        })
        .await
        .expect("was asked to consent");
    kine.wait_for("lobby_waiting", T, |m| {
        matches!(m, ServerMsg::LobbyWaiting { .. })
    })
    .await
    .expect("saw the lobby");

    assert_eq!(
        kine.wait_media_connected(T).await.expect("kiné connected"),
        hub.patient
    );
    assert_eq!(
        patient
            .wait_media_connected(T)
            .await
            .expect("patient connected"),
        hub.kine
    );
    assert_eq!(kine.send_data("bonjour").await.expect("sent"), 1);
    assert_eq!(
        patient.recv_data(T).await.expect("received").text,
        "bonjour"
    );
    patient.send_data("merci").await.expect("sent");
    let got = kine.recv_data(T).await.expect("received");
    assert_eq!((got.from, got.text.as_str()), (hub.patient, "merci"));
    let first_offer = patient
        .wait_for("the offer", T, |m| matches!(m, ServerMsg::Offer { .. }))
        .await
        .expect("offer");
    assert!(matches!(&first_offer, ServerMsg::Offer { from, .. } if *from == hub.kine));

    // Both reported media connected once admitted.
    kine.wait_state("reported", T, |s| {
        (s.reported_media == Some(MediaState::Connected)).then_some(Ok(()))
    })
    .await
    .expect("kiné reported");
    patient
        .wait_state("reported", T, |s| {
            (s.reported_media == Some(MediaState::Connected)).then_some(Ok(()))
        })
        .await
        .expect("patient reported");

    // The patient's network drops: the socket goes, the media stays.
    patient.close_socket_abruptly().await.expect("dropped");
    assert!(
        matches!(patient.send_data("still here").await, Ok(1)),
        "the data channel outlives the socket"
    );
    assert_eq!(
        kine.recv_data(T).await.expect("received").text,
        "still here"
    );
    kine.wait_for("peer_left", T, |m| {
        matches!(
            m,
            ServerMsg::PeerLeft {
                reconnecting: true,
                ..
            }
        )
    })
    .await
    .expect("told the patient left");
    // Waiting on a closed socket fails at once instead of running out the clock.
    let started = std::time::Instant::now();
    assert!(matches!(
        patient.wait_for("nothing", T, |_| false).await,
        Err(PeerError::SocketClosed)
    ));
    assert!(started.elapsed() < T / 2);

    let welcome = patient.reconnect().await.expect("reconnects").clone();
    assert!(welcome.resumed);
    patient.admitted(T).await.expect("admitted again");
    let restart = patient
        .wait_for("the restart offer", T, |m| {
            matches!(m, ServerMsg::Offer { .. })
        })
        .await
        .expect("re-offered");
    assert_ne!(
        offer_ufrag(&first_offer),
        offer_ufrag(&restart),
        "the kiné restarted ICE"
    );
    patient
        .wait_media_connected(T)
        .await
        .expect("still connected");
    kine.send_data("de retour").await.expect("sent");
    assert_eq!(
        patient.recv_data(T).await.expect("received").text,
        "de retour"
    );

    // Now the kiné's socket drops; on its return it re-offers, restarting ICE again.
    kine.close_socket_abruptly().await.expect("dropped");
    patient
        .wait_for("peer_left", T, |m| {
            matches!(
                m,
                ServerMsg::PeerLeft {
                    reconnecting: true,
                    ..
                }
            )
        })
        .await
        .expect("told the kiné left");
    assert!(kine.reconnect().await.expect("reconnects").resumed);
    kine.admitted(T).await.expect("admitted again");
    let third = patient
        .wait_for("the kiné's restart offer", T, |m| {
            matches!(m, ServerMsg::Offer { .. })
        })
        .await
        .expect("re-offered");
    assert_ne!(offer_ufrag(&restart), offer_ufrag(&third));
    kine.wait_media_connected(T).await.expect("still connected");
    patient.send_data("toujours là").await.expect("sent");
    assert_eq!(
        kine.recv_data(T).await.expect("received").text,
        "toujours là"
    );

    // The kiné hangs up: the session ends for everyone.
    assert_eq!(kine.hangup(T).await.expect("hung up"), Some(hub::BILLABLE));
    let ended = patient
        .wait_for("ended", T, |m| matches!(m, ServerMsg::Ended { .. }))
        .await
        .expect("told it ended");
    assert!(matches!(
        ended,
        ServerMsg::Ended {
            billable_seconds: hub::BILLABLE,
            ..
        }
    ));
    assert_eq!(
        patient.state().ended.map(|e| e.billable_seconds),
        Some(hub::BILLABLE)
    );

    let record = hub.record();
    assert!(record.devices.iter().all(|d| d == "telesoin-peer"));
    assert!(
        record.origins.contains(&Some("https://app.example".into())),
        "the configured Origin is sent"
    );
    assert!(
        record.origins.contains(&None),
        "no Origin unless configured"
    );
    let kine_reports = record
        .media
        .iter()
        .filter(|(p, s, _)| *p == hub.kine && *s == MediaState::Connected)
        .count();
    assert!(
        kine_reports >= 2,
        "the kiné reported its media again after reconnecting: {:?}",
        record.media
    );
    for who in [hub.kine, hub.patient] {
        assert!(
            record
                .media
                .iter()
                .any(|(p, s, _)| *p == who && *s == MediaState::Connected),
            "{who} reported media connected: {:?}",
            record.media
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_carries_the_code_and_both_messages() {
    let (_hub, base) = Hub::start_plain().await;
    let err = Peer::join(config(&base, "unknown-token"))
        .await
        .expect_err("refused");
    let PeerError::Refused(refusal) = err else {
        panic!("not a refusal: {err}")
    };
    assert_eq!(refusal.code, "link_invalid");
    assert!(!refusal.message_fr.is_empty() && !refusal.message_en.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_trusted_pem_or_with_invalid_certificates_accepted() {
    let (_hub, base, pem) = Hub::start_tls().await;

    // The public roots do not know a self-signed certificate.
    let err = Peer::join(config(&base, hub::KINE_TOKEN))
        .await
        .expect_err("untrusted");
    assert!(matches!(err, PeerError::WebSocket(_)), "{err}");

    let mut kine = Peer::join(PeerConfig {
        ca_pem: Some(pem),
        ..config(&base, hub::KINE_TOKEN)
    })
    .await
    .expect("trusted PEM");
    kine.admitted(T).await.expect("admitted");

    let mut patient = Peer::join(PeerConfig {
        accept_invalid_certs: true,
        ..config(&base, hub::PATIENT_TOKEN)
    })
    .await
    .expect("insecure mode");
    patient
        .wait_for("consent_required", T, |m| {
            matches!(
                m,
                ServerMsg::Waiting {
                    reason: WaitReason::ConsentRequired
                }
            )
        })
        .await
        .expect("asked for consent, and does not give it unless configured");
    assert!(patient.admitted(Duration::from_millis(300)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_replaces_the_first() {
    let (hub, base) = Hub::start_plain().await;
    let mut first = Peer::join(config(&base, hub::KINE_TOKEN))
        .await
        .expect("joins");
    first.admitted(T).await.expect("admitted");
    let mut second = Peer::join(config(&base, hub::KINE_TOKEN))
        .await
        .expect("joins again");
    assert!(second.welcome().resumed);
    first
        .wait_for("replaced", T, |m| matches!(m, ServerMsg::Replaced))
        .await
        .expect("told");
    assert!(matches!(first.admitted(T).await, Err(PeerError::Replaced)) || first.state().replaced);
    second.admitted(T).await.expect("the new one is admitted");
    let _ = hub;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_pongs_stay_out_of_the_message_queue() {
    let (hub, base) = Hub::start_plain().await;
    let mut kine = Peer::join(PeerConfig {
        ping_interval: Some(Duration::from_millis(10)),
        ..config(&base, hub::KINE_TOKEN)
    })
    .await
    .expect("joins");
    kine.admitted(T).await.expect("admitted");
    let deadline = std::time::Instant::now() + T;
    while hub.record().pings < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "keepalive pings are sent"
        );
        tokio::task::yield_now().await;
    }
    kine.send(telesoin_proto::signal::ClientMsg::Ping)
        .await
        .expect("ping");
    kine.wait_for("pong", T, |m| matches!(m, ServerMsg::Pong))
        .await
        .expect("our own ping is answered");
    while let Some(m) = kine.try_next_message() {
        assert!(!matches!(m, ServerMsg::Pong), "a keepalive pong was queued");
    }
}
