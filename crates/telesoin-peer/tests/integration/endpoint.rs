//! Two endpoints in one process, connected through an in-memory signaling relay that speaks
//! the real wire shapes: every offer, answer and candidate is written as a `ClientMsg`, parsed
//! the way the server parses it, re-addressed as a `ServerMsg` and parsed again by the
//! receiver. ICE and DTLS run for real on loopback UDP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use telesoin_peer::endpoint::{
    ConnectionState, Endpoint, EndpointConfig, EndpointEvent, EventSink, Side,
};
use telesoin_peer::wire::{CandidateInit, RelayPayload, SessionDescription};
use telesoin_proto::signal::{ClientMsg, ServerMsg};
use tokio::sync::mpsc;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn loopback_config() -> EndpointConfig {
    EndpointConfig {
        ice_servers: Vec::new(),
        relay_only: false,
        udp_bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        video: true,
    }
}

/// What the server does to a relayed message: read the client's frame, re-address it.
fn relay(frame: String, from: Uuid) -> ServerMsg {
    let relayed = match ClientMsg::parse(&frame).expect("the server can read it") {
        ClientMsg::Offer { data, .. } => ServerMsg::Offer { from, data },
        ClientMsg::Answer { data, .. } => ServerMsg::Answer { from, data },
        ClientMsg::Candidate { data, .. } => ServerMsg::Candidate { from, data },
        other => panic!("not a relayed message: {}", other.kind()),
    };
    ServerMsg::parse(&relayed.to_text()).expect("the peer can read it")
}

fn description(msg: ServerMsg) -> SessionDescription {
    match msg {
        ServerMsg::Offer { data, .. } | ServerMsg::Answer { data, .. } => {
            SessionDescription::from_data(&data).expect("a description")
        }
        _ => panic!("not a description"),
    }
}

/// One side of the call, with the events its endpoint reported that the test looks at.
struct Party {
    id: Uuid,
    endpoint: Arc<Endpoint>,
    events: mpsc::UnboundedReceiver<EndpointEvent>,
}

impl Party {
    /// Waits for an event matching `pred`, skipping others.
    async fn expect(&mut self, what: &str, pred: impl Fn(&EndpointEvent) -> bool) -> EndpointEvent {
        tokio::time::timeout(WAIT, async {
            loop {
                let event = self.events.recv().await.expect("endpoint alive");
                if pred(&event) {
                    return event;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen"))
    }

    async fn expect_data(&mut self) -> String {
        match self
            .expect("a data message", |e| matches!(e, EndpointEvent::Data(_)))
            .await
        {
            EndpointEvent::Data(text) => text,
            _ => unreachable!(),
        }
    }
}

/// Builds an endpoint whose candidates are relayed to `peer_tx` as wire frames, and whose
/// other events go to the returned receiver.
async fn party(
    side: Side,
    id: Uuid,
    candidates_out: mpsc::UnboundedSender<(Uuid, String)>,
) -> Party {
    let (tx, events) = mpsc::unbounded_channel();
    let sink: EventSink = Arc::new(move |event| match event {
        EndpointEvent::Candidate(c) => {
            let frame = ClientMsg::Candidate {
                to: None,
                data: c.to_data(),
            }
            .to_text();
            let _ = candidates_out.send((id, frame));
        }
        other => {
            let _ = tx.send(other);
        }
    });
    let endpoint = Arc::new(
        Endpoint::new(&loopback_config(), side, sink)
            .await
            .expect("endpoint"),
    );
    Party {
        id,
        endpoint,
        events,
    }
}

/// Delivers relayed candidates to whichever endpoint they are not from.
fn spawn_candidate_relay(
    mut frames: mpsc::UnboundedReceiver<(Uuid, String)>,
    a: (Uuid, Arc<Endpoint>),
    b: (Uuid, Arc<Endpoint>),
) {
    tokio::spawn(async move {
        while let Some((from, frame)) = frames.recv().await {
            let ServerMsg::Candidate { data, .. } = relay(frame, from) else {
                unreachable!()
            };
            let candidate = CandidateInit::from_data(&data).expect("a candidate");
            assert!(
                candidate.sdp_mid.as_deref().is_some_and(|m| !m.is_empty()),
                "candidates carry a mid"
            );
            let target = if from == a.0 { &b.1 } else { &a.1 };
            target
                .add_remote_candidate(candidate)
                .await
                .expect("candidate accepted");
        }
    });
}

fn ufrag(d: &SessionDescription) -> String {
    d.sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .expect("an ICE username fragment")
        .to_owned()
}

/// Runs one offer/answer round through the relay and returns both descriptions.
async fn negotiate(
    kine: &Party,
    patient: &Party,
    ice_restart: bool,
) -> (SessionDescription, SessionDescription) {
    let offer = kine.endpoint.offer(ice_restart).await.expect("offer");
    let frame = ClientMsg::Offer {
        to: Some(patient.id),
        data: offer.to_data(),
    }
    .to_text();
    let offer = description(relay(frame, kine.id));
    let answer = patient.endpoint.accept_offer(&offer).await.expect("answer");
    let frame = ClientMsg::Answer {
        to: Some(kine.id),
        data: answer.to_data(),
    }
    .to_text();
    let answer = description(relay(frame, patient.id));
    kine.endpoint
        .accept_answer(&answer)
        .await
        .expect("answer applied");
    (offer, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_connect_exchange_data_and_restart_ice() {
    let (frames_tx, frames_rx) = mpsc::unbounded_channel();
    let mut kine = party(Side::Offerer, Uuid::new_v4(), frames_tx.clone()).await;
    let mut patient = party(Side::Answerer, Uuid::new_v4(), frames_tx).await;
    spawn_candidate_relay(
        frames_rx,
        (kine.id, kine.endpoint.clone()),
        (patient.id, patient.endpoint.clone()),
    );

    let (offer, answer) = negotiate(&kine, &patient, false).await;
    assert!(
        offer.sdp.contains("m=application"),
        "the offer carries the data channel"
    );
    assert_ne!(offer.fingerprint(), answer.fingerprint());

    for party in [&mut kine, &mut patient] {
        party
            .expect("connected", |e| {
                *e == EndpointEvent::State(ConnectionState::Connected)
            })
            .await;
        party
            .expect("data channel open", |e| *e == EndpointEvent::DataOpen)
            .await;
    }
    kine.endpoint.send_text("bonjour").await.expect("send");
    assert_eq!(patient.expect_data().await, "bonjour");
    patient.endpoint.send_text("hello").await.expect("send");
    assert_eq!(kine.expect_data().await, "hello");

    // ICE restart on the same connections: fresh credentials both ways, same DTLS identity,
    // the data channel survives.
    let fingerprint = patient.endpoint.remote_fingerprint().await;
    kine.endpoint
        .set_ice_servers(&[])
        .await
        .expect("new ICE servers for the restart");
    let (offer2, answer2) = negotiate(&kine, &patient, true).await;
    assert_ne!(
        ufrag(&offer),
        ufrag(&offer2),
        "the restart offer has new ICE credentials"
    );
    assert_ne!(
        ufrag(&answer),
        ufrag(&answer2),
        "the restart answer has new ICE credentials"
    );
    assert_eq!(offer2.fingerprint(), offer.fingerprint());
    assert_eq!(patient.endpoint.remote_fingerprint().await, fingerprint);
    // webrtc-rs re-runs the connectivity checks: both connections go back through
    // `connecting` to `connected` (a restart that changed nothing would report no state).
    for party in [&mut kine, &mut patient] {
        party
            .expect("reconnected after the restart", |e| {
                *e == EndpointEvent::State(ConnectionState::Connected)
            })
            .await;
    }

    kine.endpoint
        .send_text("après redémarrage")
        .await
        .expect("send after restart");
    assert_eq!(patient.expect_data().await, "après redémarrage");
    patient
        .endpoint
        .send_text("after restart")
        .await
        .expect("send after restart");
    assert_eq!(kine.expect_data().await, "after restart");
    assert_eq!(kine.endpoint.state(), ConnectionState::Connected);
    assert_eq!(patient.endpoint.state(), ConnectionState::Connected);

    kine.endpoint.close().await;
    patient
        .expect("the patient sees the channel close", |e| {
            *e == EndpointEvent::DataClosed
        })
        .await;
    patient.endpoint.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_before_the_offer_are_kept_until_it_arrives() {
    let (frames_tx, mut frames_rx) = mpsc::unbounded_channel();
    let mut kine = party(Side::Offerer, Uuid::new_v4(), frames_tx.clone()).await;
    let mut patient = party(Side::Answerer, Uuid::new_v4(), frames_tx).await;

    // Deliver the kiné's first candidate to the patient before the offer.
    let offer = kine.endpoint.offer(false).await.expect("offer");
    let (from, frame) = tokio::time::timeout(WAIT, frames_rx.recv())
        .await
        .expect("a candidate")
        .expect("open");
    assert_eq!(from, kine.id);
    let ServerMsg::Candidate { data, .. } = relay(frame, from) else {
        panic!("not a candidate")
    };
    patient
        .endpoint
        .add_remote_candidate(CandidateInit::from_data(&data).expect("candidate"))
        .await
        .expect("kept for later");
    patient
        .endpoint
        .add_remote_candidate(CandidateInit {
            candidate: String::new(),
            ..Default::default()
        })
        .await
        .expect("end-of-candidates is accepted");

    spawn_candidate_relay(
        frames_rx,
        (kine.id, kine.endpoint.clone()),
        (patient.id, patient.endpoint.clone()),
    );
    let answer = patient.endpoint.accept_offer(&offer).await.expect("answer");
    kine.endpoint.accept_answer(&answer).await.expect("applied");
    for party in [&mut kine, &mut patient] {
        party
            .expect("data channel open", |e| *e == EndpointEvent::DataOpen)
            .await;
    }
    assert!(patient.endpoint.send_text("ok").await.is_ok());
    assert_eq!(kine.expect_data().await, "ok");
}
