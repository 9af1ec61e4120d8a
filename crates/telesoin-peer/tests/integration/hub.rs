//! A deliberately small stand-in for the signaling server, enough to drive `Peer` through a
//! whole call without the real one: two seats (a kiné and a patient who must consent), the
//! lobby, relaying between admitted participants, reconnection with `resumed`, `replaced`,
//! and `ended` on the kiné's hangup. It parses with the real `ClientMsg::parse`, so a peer
//! message the server would reject fails here too. The real server's rules are tested in
//! telesoin-server; this only checks that the peer speaks the protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use telesoin_proto::Refusal;
use telesoin_proto::signal::{
    ClientMsg, MediaState, PeerInfo, Role, ServerMsg, SessionInfo, WaitReason,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

pub const KINE_TOKEN: &str = "kine-token";
pub const PATIENT_TOKEN: &str = "patient-token";
pub const CONSENT_VERSION: &str = "2025-01";
pub const BILLABLE: i64 = 42;

struct Seat {
    participant: Uuid,
    role: Role,
    /// The current connection's outbox and its number (to tell a replaced one apart).
    conn: Option<(u64, mpsc::UnboundedSender<Message>)>,
    admitted: bool,
    consented: bool,
    in_lobby: bool,
}

#[derive(Default)]
struct State {
    seats: HashMap<&'static str, Seat>,
    next_conn: u64,
    ended: bool,
}

/// What the hub saw, for assertions.
#[derive(Default, Clone, Debug)]
pub struct Record {
    pub media: Vec<(Uuid, MediaState, Option<String>)>,
    pub origins: Vec<Option<String>>,
    pub devices: Vec<String>,
    pub pings: usize,
}

#[derive(Clone)]
pub struct Hub {
    state: Arc<Mutex<State>>,
    record: Arc<Mutex<Record>>,
    pub kine: Uuid,
    pub patient: Uuid,
}

impl Hub {
    fn new() -> Hub {
        let kine = Uuid::new_v4();
        let patient = Uuid::new_v4();
        let mut state = State::default();
        for (token, participant, role) in [
            (KINE_TOKEN, kine, Role::Kine),
            (PATIENT_TOKEN, patient, Role::Patient),
        ] {
            state.seats.insert(
                token,
                Seat {
                    participant,
                    role,
                    conn: None,
                    admitted: false,
                    consented: false,
                    in_lobby: false,
                },
            );
        }
        Hub {
            state: Arc::new(Mutex::new(state)),
            record: Arc::new(Mutex::new(Record::default())),
            kine,
            patient,
        }
    }

    pub fn record(&self) -> Record {
        self.record.lock().expect("lock").clone()
    }

    /// Serves plain WebSockets on 127.0.0.1; returns the hub and the base URL `http://..`.
    pub async fn start_plain() -> (Hub, String) {
        let hub = Hub::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let h = hub.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(h.clone().serve(tcp));
            }
        });
        (hub, format!("http://{addr}"))
    }

    /// Serves WebSockets over TLS with a fresh self-signed certificate for `localhost`;
    /// returns the hub, the base URL `https://localhost:PORT` and the certificate's PEM.
    pub async fn start_tls() -> (Hub, String, Vec<u8>) {
        let cert =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let pem = cert.cert.pem().into_bytes();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let hub = Hub::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let h = hub.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let h = h.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        h.serve(tls).await;
                    }
                });
            }
        });
        (hub, format!("https://localhost:{}", addr.port()), pem)
    }

    // The handshake callback's error type is tungstenite's HTTP response, which is large.
    #[allow(clippy::result_large_err)]
    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, stream: S) {
        let origin = Arc::new(Mutex::new(None));
        let seen = origin.clone();
        let callback = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                             resp| {
            *seen.lock().expect("lock") = req
                .headers()
                .get("origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            assert_eq!(req.uri().path(), "/ws");
            assert!(req.uri().query().is_none(), "nothing in the query string");
            Ok(resp)
        };
        let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
            return;
        };
        self.record
            .lock()
            .expect("lock")
            .origins
            .push(origin.lock().expect("lock").clone());
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let close = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || close {
                    break;
                }
            }
        });

        // The first message must be `join`.
        let Some(Ok(Message::Text(first))) = stream.next().await else {
            return;
        };
        let Ok(ClientMsg::Join { token, device, .. }) = ClientMsg::parse(&first) else {
            let _ = tx.send(Message::Close(None));
            return;
        };
        self.record.lock().expect("lock").devices.push(device.kind);
        let Some((token, conn)) = self.join(&token, &tx) else {
            let refusal = Refusal {
                code: "link_invalid".into(),
                message_fr: "Ce lien n'est pas valable.".into(),
                message_en: "This link is not valid.".into(),
                details: serde_json::Value::Null,
            };
            let _ = tx.send(text(ServerMsg::Refused(refusal)));
            let _ = tx.send(Message::Close(None));
            return;
        };
        while let Some(Ok(frame)) = stream.next().await {
            let Message::Text(frame) = frame else {
                continue;
            };
            let msg = ClientMsg::parse(&frame).expect("the peer sends valid messages");
            if !self.on_message(token, conn, msg) {
                return;
            }
        }
        // The socket dropped without hangup: keep the seat, tell the others.
        let mut st = self.state.lock().expect("lock");
        let seat = st.seats.get_mut(token).expect("seat");
        if seat.conn.as_ref().is_some_and(|(n, _)| *n == conn) {
            seat.conn = None;
            let participant = seat.participant;
            broadcast(
                &st,
                participant,
                ServerMsg::PeerLeft {
                    participant,
                    reconnecting: true,
                },
            );
        }
    }

    fn join(
        &self,
        token: &str,
        tx: &mpsc::UnboundedSender<Message>,
    ) -> Option<(&'static str, u64)> {
        let mut st = self.state.lock().expect("lock");
        let token: &'static str = st.seats.keys().find(|t| **t == token)?;
        st.next_conn += 1;
        let conn = st.next_conn;
        let seat = st.seats.get_mut(token).expect("seat");
        let resumed = seat.conn.is_some() || seat.admitted;
        if let Some((_, old)) = seat.conn.replace((conn, tx.clone())) {
            let _ = old.send(text(ServerMsg::Replaced));
            let _ = old.send(Message::Close(None));
        }
        let (me, role, admitted) = (seat.participant, seat.role, seat.admitted);
        let welcome = ServerMsg::Welcome {
            protocol: telesoin_proto::PROTOCOL_VERSION,
            participant: me,
            role,
            session: SessionInfo {
                session: Uuid::nil(),
                kine_name: "Kiné Test".into(),
                starts_at: chrono::Utc::now(),
                act_code: "AMK".into(),
                act_label: "test".into(),
                billing_class: "hn".into(),
                consent_text_version: CONSENT_VERSION.into(),
                minor: false,
            },
            ice_servers: Vec::new(),
            ice_transport_policy: "all".into(),
            peers: peers(&st, me),
            resumed,
            heartbeat_seconds: 10,
        };
        let _ = tx.send(text(welcome));
        if role == Role::Kine || admitted {
            admit(&mut st, token);
        } else {
            patient_waits(&mut st, token);
        }
        Some((token, conn))
    }

    /// Returns false when the connection must end.
    fn on_message(&self, token: &'static str, conn: u64, msg: ClientMsg) -> bool {
        let mut st = self.state.lock().expect("lock");
        let seat = st.seats.get(token).expect("seat");
        if seat.conn.as_ref().is_none_or(|(n, _)| *n != conn) {
            return false; // replaced
        }
        let me = seat.participant;
        match msg {
            ClientMsg::Consent { text_version, .. } => {
                assert_eq!(text_version, CONSENT_VERSION);
                st.seats.get_mut(token).expect("seat").consented = true;
                patient_waits(&mut st, token);
            }
            ClientMsg::Admit { participant } => {
                assert_eq!(seat.role, Role::Kine, "only the kiné admits");
                if let Some(t) = st
                    .seats
                    .iter()
                    .find(|(_, s)| s.participant == participant && s.in_lobby)
                    .map(|(t, _)| *t)
                {
                    admit(&mut st, t);
                }
            }
            ClientMsg::Offer { to, data } => {
                assert_eq!(seat.role, Role::Kine, "only the kiné offers");
                relay(&st, token, to, ServerMsg::Offer { from: me, data });
            }
            ClientMsg::Answer { to, data } => {
                relay(&st, token, to, ServerMsg::Answer { from: me, data })
            }
            ClientMsg::Candidate { to, data } => {
                relay(&st, token, to, ServerMsg::Candidate { from: me, data })
            }
            ClientMsg::Media {
                state, incident, ..
            } => {
                self.record
                    .lock()
                    .expect("lock")
                    .media
                    .push((me, state, incident));
            }
            ClientMsg::Hangup { .. } | ClientMsg::Leave { .. } => {
                if seat.role == Role::Kine {
                    st.ended = true;
                    for s in st.seats.values_mut() {
                        if let Some((_, tx)) = s.conn.take() {
                            let _ = tx.send(text(ServerMsg::Ended {
                                billable_seconds: BILLABLE,
                                reason: "hangup".into(),
                            }));
                            let _ = tx.send(Message::Close(None));
                        }
                    }
                } else {
                    let seat = st.seats.get_mut(token).expect("seat");
                    if let Some((_, tx)) = seat.conn.take() {
                        let _ = tx.send(Message::Close(None));
                    }
                    seat.admitted = false;
                    broadcast(
                        &st,
                        me,
                        ServerMsg::PeerLeft {
                            participant: me,
                            reconnecting: false,
                        },
                    );
                }
                return false;
            }
            ClientMsg::Ping => {
                self.record.lock().expect("lock").pings += 1;
                send(&st, token, ServerMsg::Pong);
            }
            ClientMsg::Join { .. } | ClientMsg::Attest { .. } => panic!("unexpected message"),
        }
        true
    }
}

fn text(msg: ServerMsg) -> Message {
    Message::text(msg.to_text())
}

/// Relays between admitted participants only.
fn relay(st: &State, from: &str, to: Option<Uuid>, msg: ServerMsg) {
    assert!(
        st.seats[from].admitted,
        "nothing is relayed before admission"
    );
    let to = to.expect("the peer always addresses relayed messages");
    if let Some((_, tx)) = st
        .seats
        .values()
        .find(|s| s.participant == to && s.admitted)
        .and_then(|s| s.conn.as_ref())
    {
        let _ = tx.send(text(msg));
    }
}

fn send(st: &State, token: &str, msg: ServerMsg) {
    if let Some((_, tx)) = st.seats.get(token).and_then(|s| s.conn.as_ref()) {
        let _ = tx.send(text(msg));
    }
}

fn peers(st: &State, me: Uuid) -> Vec<PeerInfo> {
    st.seats
        .values()
        .filter(|s| s.participant != me && s.conn.is_some())
        .map(|s| PeerInfo {
            participant: s.participant,
            role: s.role,
            admitted: s.admitted,
        })
        .collect()
}

/// Sends to every connected participant but `me`.
fn broadcast(st: &State, me: Uuid, msg: ServerMsg) {
    let frame = msg.to_text();
    for s in st.seats.values().filter(|s| s.participant != me) {
        if let Some((_, tx)) = &s.conn {
            let _ = tx.send(Message::text(frame.clone()));
        }
    }
}

fn kine_present(st: &State) -> bool {
    st.seats
        .values()
        .any(|s| s.role == Role::Kine && s.conn.is_some())
}

fn patient_waits(st: &mut State, token: &'static str) {
    let seat = st.seats.get(token).expect("seat");
    let me = seat.participant;
    let reason = if !seat.consented {
        WaitReason::ConsentRequired
    } else if !kine_present(st) {
        WaitReason::KineAbsent
    } else {
        WaitReason::AwaitingAdmission
    };
    send(st, token, ServerMsg::Waiting { reason });
    if reason == WaitReason::AwaitingAdmission {
        st.seats.get_mut(token).expect("seat").in_lobby = true;
        let kine = st
            .seats
            .iter()
            .find(|(_, s)| s.role == Role::Kine)
            .map(|(t, _)| *t)
            .expect("kiné seat");
        send(
            st,
            kine,
            ServerMsg::LobbyWaiting {
                participant: me,
                role: Role::Patient,
                reason,
            },
        );
    }
}

fn admit(st: &mut State, token: &'static str) {
    let seat = st.seats.get_mut(token).expect("seat");
    seat.admitted = true;
    seat.in_lobby = false;
    let (me, role) = (seat.participant, seat.role);
    let list = peers(st, me);
    send(st, token, ServerMsg::Admitted { peers: list });
    broadcast(
        st,
        me,
        ServerMsg::PeerJoined {
            peer: PeerInfo {
                participant: me,
                role,
                admitted: true,
            },
        },
    );
    if role == Role::Kine {
        // Whoever consented before the kiné came now waits for admission.
        let waiting: Vec<_> = st
            .seats
            .iter()
            .filter(|(_, s)| s.role != Role::Kine && s.consented && !s.admitted && s.conn.is_some())
            .map(|(t, _)| *t)
            .collect();
        for t in waiting {
            patient_waits(st, t);
        }
    }
}
