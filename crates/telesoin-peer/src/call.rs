//! The call task: one signaling socket, one [`Endpoint`] per remote participant.
//!
//! It runs in its own tokio task, owns the socket and the endpoints, applies the protocol's
//! rules (below), and reports to the [`Peer`](crate::Peer) handle through channels: every
//! server message, every data-channel message, and a [`CallState`] snapshot.
//!
//! Rules, the same as the web client's (`web-client/lib/call.js`):
//! - The kiné is always the offerer. When it learns of an admitted non-kiné participant
//!   (`admitted.peers`, or `peer_joined` with `admitted: true`, also after a reconnect) it
//!   offers, with an ICE restart when a connection to that participant already exists.
//!   Everyone else only answers. One offerer means no glare to resolve.
//! - A description with a new DTLS fingerprint comes from a new RTCPeerConnection: the
//!   endpoint for that participant is replaced, not renegotiated.
//! - The aggregate media state (connected when any connection is), with `video_in` (video RTP
//!   received on a remote track in the last 2 s) and `video_out` (frames written to our own
//!   video track in the last 2 s), is reported with `media` on every change (checked every
//!   second), again after each `admitted` (the server needs it after a reconnection), and as a
//!   heartbeat every `welcome.heartbeat_seconds`. Nothing is reported before admission, after
//!   `hangup` or after `ended`.
//! - A `hangup` is kept until the server acknowledges it (`ended`, or a refusal saying the
//!   session is over); a reconnection replays it with `ago_ms`, and its `join` says with
//!   `media_lost_ago_ms` when the media ended (at the hang-up, or when the connection was lost).
//! - The kiné restarts ICE when a connection fails, or stays disconnected for 2.5 s.
//! - A lost socket is reopened by itself (unless [`PeerConfig::reconnect`] is off), with the same
//!   token, after [`RETRY_DELAYS`] (the web client's), for [`PeerConfig::reconnect_for`]; not
//!   after `ended`, `refused` or `replaced`, nor after a socket dropped on purpose
//!   ([`Command::DropSocket`], held closed until an explicit reconnection). A refusal of the
//!   rejoin (the session ended meanwhile) is final.
//! - Nothing secret is logged: no token, no SDP, no candidate, no name from `welcome`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use telesoin_proto::signal::{
    ClientMsg, Device, MediaState, PeerInfo, Role, ServerMsg, WaitReason,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::config::PeerConfig;
use crate::endpoint::{ConnectionState, Endpoint, EndpointConfig, EndpointEvent, EventSink, Side};
use crate::error::{PeerError, Result};
use crate::link::JoinLink;
use crate::peer::{CallState, DataMessage, Ended, RemoteMedia, Welcome};
use crate::wire::{CandidateInit, RelayPayload, SessionDescription};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a kiné's connection may stay `disconnected` before it restarts ICE.
const DISCONNECTED_GRACE: Duration = Duration::from_millis(2500);

/// The pauses before each attempt to reopen a lost socket (then the last one, again), as in
/// `web-client/lib/signaling.js`.
pub(crate) const RETRY_DELAYS: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_millis(300),
    Duration::from_millis(700),
    Duration::from_millis(1500),
    Duration::from_millis(2500),
    Duration::from_millis(4000),
];

/// A lost socket being reopened: since when, how many attempts failed, when the next one is.
#[derive(Debug, Clone, Copy)]
struct Retry {
    since: tokio::time::Instant,
    failed: usize,
    at: tokio::time::Instant,
}

/// Opens the signaling socket, sends `join` and reads the answer: `welcome`, or the refusal.
pub(crate) async fn connect_and_join(
    cfg: &PeerConfig,
    link: &JoinLink,
    media_lost_ago_ms: Option<u64>,
) -> Result<(Ws, Welcome)> {
    let after = cfg.connect_timeout;
    tokio::time::timeout(after, async {
        let mut request = link.ws_url().as_str().into_client_request()?;
        if let Some(origin) = &cfg.origin {
            let value = HeaderValue::from_str(origin)
                .map_err(|_| PeerError::Link("the Origin is not a valid header value".into()))?;
            request.headers_mut().insert("Origin", value);
        }
        let connector = if link.is_tls() {
            Connector::Rustls(crate::tls::client_config(
                cfg.accept_invalid_certs,
                cfg.ca_pem.as_deref(),
            )?)
        } else {
            Connector::Plain
        };
        let ws_config =
            WebSocketConfig::default().max_message_size(Some(telesoin_proto::MAX_MESSAGE_BYTES));
        let (mut ws, _response) = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(ws_config),
            true,
            Some(connector),
        )
        .await?;
        let join = ClientMsg::Join {
            token: link.token().expose().to_owned(),
            device: Device {
                kind: cfg.device_kind.clone(),
            },
            media_lost_ago_ms,
        };
        ws.send(Message::text(join.to_text())).await?;
        loop {
            let text = match ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Err(PeerError::SocketClosed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
            };
            return match parse(&text)? {
                ServerMsg::Welcome {
                    protocol,
                    participant,
                    role,
                    session,
                    ice_servers,
                    ice_transport_policy,
                    peers,
                    resumed,
                    heartbeat_seconds,
                } => Ok((
                    ws,
                    Welcome {
                        protocol,
                        participant,
                        role,
                        session,
                        ice_servers,
                        relay_only: ice_transport_policy == "relay",
                        peers,
                        resumed,
                        heartbeat_seconds,
                    },
                )),
                ServerMsg::Refused(refusal) => Err(PeerError::Refused(refusal)),
                ServerMsg::Error(refusal) => Err(PeerError::Server(refusal)),
                other => Err(PeerError::Protocol(format!(
                    "expected welcome, got {}",
                    kind(&other)
                ))),
            };
        }
    })
    .await
    .map_err(|_| PeerError::Timeout {
        what: "welcome",
        after,
    })?
}

fn parse(text: &str) -> Result<ServerMsg> {
    if text.len() > telesoin_proto::MAX_MESSAGE_BYTES {
        return Err(PeerError::Protocol(
            "message larger than the protocol allows".into(),
        ));
    }
    // The parse error may quote the frame; keep only its position.
    ServerMsg::parse(text).map_err(|_| PeerError::Protocol("unreadable server message".into()))
}

/// The message's `type`, for logs (never its content).
pub(crate) fn kind(msg: &ServerMsg) -> &'static str {
    match msg {
        ServerMsg::Welcome { .. } => "welcome",
        ServerMsg::Waiting { .. } => "waiting",
        ServerMsg::Admitted { .. } => "admitted",
        ServerMsg::Refused(_) => "refused",
        ServerMsg::PeerJoined { .. } => "peer_joined",
        ServerMsg::LobbyWaiting { .. } => "lobby_waiting",
        ServerMsg::PeerLeft { .. } => "peer_left",
        ServerMsg::Offer { .. } => "offer",
        ServerMsg::Answer { .. } => "answer",
        ServerMsg::Candidate { .. } => "candidate",
        ServerMsg::Ended { .. } => "ended",
        ServerMsg::Replaced => "replaced",
        ServerMsg::Error(_) => "error",
        ServerMsg::Pong => "pong",
    }
}

/// What the [`Peer`](crate::Peer) handle asks of the task.
pub(crate) enum Command {
    Send(ClientMsg, oneshot::Sender<Result<()>>),
    /// Sends on every open data channel; answers how many took it.
    SendData(String, oneshot::Sender<Result<usize>>),
    Hangup(oneshot::Sender<Result<()>>),
    DropSocket(oneshot::Sender<()>),
    Reconnect(oneshot::Sender<Result<Welcome>>),
    /// Reconnects through another node (another link to the same seat, same token).
    ReconnectVia(Box<JoinLink>, oneshot::Sender<Result<Welcome>>),
    Shutdown(oneshot::Sender<()>),
}

/// What the endpoints (and the task's own timers) tell the task.
enum Internal {
    Endpoint {
        remote: Uuid,
        generation: u64,
        event: EndpointEvent,
    },
    RestartIfStillDisconnected {
        remote: Uuid,
        generation: u64,
    },
}

/// Everything the task knows about one remote participant.
struct Remote {
    endpoint: Endpoint,
    /// Distinguishes this endpoint's events from those of the one it replaced.
    generation: u64,
    state: ConnectionState,
    data_open: bool,
    /// Bumped when the remote leaves (even to reconnect) and when we rejoin: an offer made in
    /// an earlier epoch may never have been delivered.
    epoch: u64,
    offered_in_epoch: Option<u64>,
}

/// Channels from the task to the handle.
pub(crate) struct Outputs {
    pub messages: mpsc::UnboundedSender<ServerMsg>,
    pub data: mpsc::UnboundedSender<DataMessage>,
    pub state: watch::Sender<CallState>,
}

pub(crate) struct CallTask {
    cfg: Arc<PeerConfig>,
    link: JoinLink,
    welcome: Welcome,
    ws: Option<Ws>,
    remotes: HashMap<Uuid, Remote>,
    next_generation: u64,
    internal_tx: mpsc::UnboundedSender<Internal>,
    out: Outputs,
    admitted: bool,
    hung_up: bool,
    ended: bool,
    replaced: bool,
    /// Keepalive pings whose pong has not come back; those pongs are not passed on.
    keepalive_pending: u32,
    /// Pings sent through the handle whose pong has not come back; those are passed on.
    explicit_pings: u32,
    /// The media state the server was last told since the last `welcome` (None: nothing yet):
    /// (state, video_in, video_out), and when.
    reported: Option<(MediaState, bool, bool)>,
    reported_at: Option<tokio::time::Instant>,
    /// A hang-up sent and not yet acknowledged: replayed after a reconnection.
    pending_hangup: Option<tokio::time::Instant>,
    /// When the aggregate media connection was last lost (None: connected, or never was).
    media_lost_at: Option<tokio::time::Instant>,
    was_connected: bool,
    /// A `refused` was received: the call is over here.
    refused: bool,
    /// The socket was dropped on purpose ([`Command::DropSocket`]): no reconnection by itself.
    held: bool,
    /// The reconnection under way, if the socket was lost.
    retry: Option<Retry>,
}

impl CallTask {
    /// Runs the call until the handle shuts it down or is dropped.
    pub(crate) fn spawn(
        cfg: Arc<PeerConfig>,
        link: JoinLink,
        ws: Ws,
        welcome: Welcome,
        commands: mpsc::UnboundedReceiver<Command>,
        out: Outputs,
    ) -> tokio::task::JoinHandle<()> {
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let task = CallTask {
            cfg,
            link,
            welcome,
            ws: Some(ws),
            remotes: HashMap::new(),
            next_generation: 0,
            internal_tx,
            out,
            admitted: false,
            hung_up: false,
            ended: false,
            replaced: false,
            keepalive_pending: 0,
            explicit_pings: 0,
            reported: None,
            reported_at: None,
            pending_hangup: None,
            media_lost_at: None,
            was_connected: false,
            refused: false,
            held: false,
            retry: None,
        };
        tokio::spawn(task.run(commands, internal_rx))
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
    ) {
        self.publish(|s| s.socket_open = true);
        // Video flags are checked every second; the heartbeat rides on the same tick.
        let mut media_tick = Some(tokio::time::interval(Duration::from_secs(1)));
        let mut ping = self.cfg.ping_interval.map(|every| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        loop {
            let retry_at = self.retry.map(|r| r.at);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        if self.on_command(command).await {
                            break;
                        }
                    }
                    None => break,
                },
                frame = next_frame(&mut self.ws) => self.on_frame(frame).await,
                Some(event) = internal.recv() => self.on_internal(event).await,
                _ = tick(&mut media_tick) => self.report_media(false, None).await,
                () = due(retry_at) => self.retry_reconnect().await,
                _ = tick(&mut ping) => {
                    if self.ws.is_some() && self.send(ClientMsg::Ping).await.is_ok() {
                        self.keepalive_pending += 1;
                    }
                }
            }
        }
        for (_, remote) in self.remotes.drain() {
            remote.endpoint.close().await;
        }
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.close(None).await;
        }
    }

    fn publish(&self, change: impl FnOnce(&mut CallState)) {
        self.out.state.send_modify(change);
    }

    /// Returns true when the task must stop.
    async fn on_command(&mut self, command: Command) -> bool {
        match command {
            Command::Send(msg, reply) => {
                let ping = matches!(msg, ClientMsg::Ping);
                let sent = self.send(msg).await;
                if ping && sent.is_ok() {
                    self.explicit_pings += 1;
                }
                let _ = reply.send(sent);
            }
            Command::SendData(text, reply) => {
                let mut sent = 0;
                let mut last_error = None;
                for remote in self.remotes.values().filter(|r| r.data_open) {
                    match remote.endpoint.send_text(&text).await {
                        Ok(()) => sent += 1,
                        Err(e) => last_error = Some(e),
                    }
                }
                let _ = reply.send(match (sent, last_error) {
                    (0, Some(e)) => Err(e),
                    (0, None) => Err(PeerError::NoDataChannel),
                    (n, _) => Ok(n),
                });
            }
            Command::Hangup(reply) => {
                self.hung_up = true;
                self.pending_hangup = Some(tokio::time::Instant::now());
                let _ = reply.send(self.send(ClientMsg::Hangup { ago_ms: None }).await);
            }
            Command::DropSocket(reply) => {
                // Dropping the stream closes the TCP connection without a closing handshake,
                // the way a lost network does. The endpoints keep running.
                self.ws = None;
                self.held = true;
                self.retry = None;
                self.publish(|s| {
                    s.socket_open = false;
                    s.reconnecting = false;
                });
                let _ = reply.send(());
            }
            Command::Reconnect(reply) => {
                let _ = reply.send(self.explicit_reconnect().await);
            }
            Command::ReconnectVia(link, reply) => {
                self.link = *link;
                let _ = reply.send(self.explicit_reconnect().await);
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(());
                return true;
            }
        }
        false
    }

    /// A reconnection the handle asked for: whatever was under way is replaced by it.
    async fn explicit_reconnect(&mut self) -> Result<Welcome> {
        self.held = false;
        self.retry = None;
        self.publish(|s| s.reconnecting = false);
        let welcome = self.reconnect().await?;
        self.publish(|s| s.last_welcome = Some(welcome.clone()));
        Ok(welcome)
    }

    /// One attempt of a reconnection by itself; the next is scheduled if it fails.
    async fn retry_reconnect(&mut self) {
        let Some(mut retry) = self.retry.take() else {
            return;
        };
        match self.reconnect().await {
            Ok(welcome) => {
                tracing::info!(
                    attempts = retry.failed + 1,
                    "reconnected by itself after losing the socket"
                );
                self.publish(|s| {
                    s.reconnecting = false;
                    s.rejoins += 1;
                    s.last_welcome = Some(welcome);
                });
            }
            Err(PeerError::Refused(refusal)) => {
                // The seat is over (the session ended or was cancelled meanwhile): final.
                tracing::info!(code = %refusal.code, "rejoin refused");
                self.refused = true;
                self.pending_hangup = None;
                let _ = self.out.messages.send(ServerMsg::Refused(refusal.clone()));
                self.publish(|s| {
                    s.refused = Some(refusal);
                    s.reconnecting = false;
                });
            }
            Err(e) => {
                retry.failed += 1;
                if retry.since.elapsed() >= self.cfg.reconnect_for {
                    tracing::warn!(attempts = retry.failed, "giving up reconnecting: {e}");
                    self.publish(|s| s.reconnecting = false);
                    return;
                }
                tracing::info!(
                    attempts = retry.failed,
                    "reconnection failed, trying again: {e}"
                );
                let pause = RETRY_DELAYS[retry.failed.min(RETRY_DELAYS.len() - 1)];
                retry.at = tokio::time::Instant::now() + pause;
                self.retry = Some(retry);
            }
        }
    }

    async fn reconnect(&mut self) -> Result<Welcome> {
        self.ws = None;
        let lost_ago = self
            .pending_hangup
            .or_else(|| self.media_lost_now())
            .map(|at| at.elapsed().as_millis() as u64);
        let (ws, welcome) = connect_and_join(&self.cfg, &self.link, lost_ago).await?;
        tracing::info!(participant = %welcome.participant, resumed = welcome.resumed, "signaling socket reopened");
        self.ws = Some(ws);
        let servers_changed = welcome.ice_servers != self.welcome.ice_servers;
        self.welcome = welcome.clone();
        self.on_welcome();
        if servers_changed {
            for (id, remote) in &self.remotes {
                if let Err(e) = remote.endpoint.set_ice_servers(&welcome.ice_servers).await {
                    tracing::warn!(remote = %id, "updating the ICE servers failed: {e}");
                }
            }
        }
        self.publish(|s| s.socket_open = true);
        if let Some(at) = self.pending_hangup {
            // Not acknowledged before the socket went: said again, dated when it was made.
            let ago_ms = Some(at.elapsed().as_millis() as u64);
            self.send(ClientMsg::Hangup { ago_ms }).await.ok();
        }
        Ok(welcome)
    }

    /// When the media connection was lost, if it is not connected now but was before.
    fn media_lost_now(&mut self) -> Option<tokio::time::Instant> {
        let connected = self
            .remotes
            .values()
            .any(|r| r.state == ConnectionState::Connected);
        self.note_media(connected);
        self.media_lost_at
    }

    fn note_media(&mut self, connected: bool) {
        if connected {
            self.was_connected = true;
            self.media_lost_at = None;
        } else if self.was_connected && self.media_lost_at.is_none() {
            self.media_lost_at = Some(tokio::time::Instant::now());
        }
    }

    /// A (new) welcome: admission and media reports start over on this socket.
    fn on_welcome(&mut self) {
        self.admitted = false;
        self.keepalive_pending = 0;
        self.explicit_pings = 0;
        self.reported = None;
        self.reported_at = None;
        for remote in self.remotes.values_mut() {
            remote.epoch += 1;
        }
        self.publish(|s| {
            s.admitted = None;
            s.waiting = None;
        });
    }

    async fn send(&mut self, msg: ClientMsg) -> Result<()> {
        let Some(ws) = self.ws.as_mut() else {
            return Err(PeerError::SocketClosed);
        };
        let kind = msg.kind();
        if let Err(e) = ws.send(Message::text(msg.to_text())).await {
            tracing::warn!(kind, "sending on the signaling socket failed: {e}");
            self.socket_lost();
            return Err(e.into());
        }
        Ok(())
    }

    fn socket_lost(&mut self) {
        if self.ws.take().is_some() {
            tracing::info!(participant = %self.welcome.participant, "signaling socket closed");
        }
        let again =
            self.cfg.reconnect && !self.held && !self.ended && !self.replaced && !self.refused;
        if again && self.retry.is_none() {
            let now = tokio::time::Instant::now();
            self.retry = Some(Retry {
                since: now,
                failed: 0,
                at: now + RETRY_DELAYS[0],
            });
        }
        let reconnecting = self.retry.is_some();
        self.publish(|s| {
            s.socket_open = false;
            s.reconnecting = reconnecting;
        });
    }

    async fn on_frame(
        &mut self,
        frame: Option<std::result::Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => return self.socket_lost(),
            Some(Err(e)) => {
                tracing::info!("signaling socket error: {e}");
                return self.socket_lost();
            }
            Some(Ok(_)) => return,
        };
        match parse(&text) {
            // Pongs look alike: one is owed to each ping the handle sent, and only the rest
            // (answers to keepalives) are kept out of the queue.
            Ok(ServerMsg::Pong) if self.explicit_pings == 0 && self.keepalive_pending > 0 => {
                self.keepalive_pending -= 1
            }
            Ok(msg) => {
                if matches!(msg, ServerMsg::Pong) {
                    self.explicit_pings = self.explicit_pings.saturating_sub(1);
                }
                tracing::debug!(kind = kind(&msg), "server message");
                self.on_message(&msg).await;
                let _ = self.out.messages.send(msg);
            }
            Err(e) => tracing::warn!("ignoring a server frame: {e}"),
        }
    }

    async fn on_message(&mut self, msg: &ServerMsg) {
        let me = self.welcome.participant;
        let is_kine = self.welcome.role == Role::Kine;
        match msg {
            ServerMsg::Welcome { .. } => {
                tracing::warn!("unexpected welcome on an established socket");
            }
            ServerMsg::Waiting { reason } => {
                let reason = *reason;
                tracing::info!(?reason, "waiting");
                self.publish(|s| s.waiting = Some(reason));
                self.answer_waiting(reason).await;
            }
            ServerMsg::Admitted { peers } => {
                tracing::info!(participant = %me, peers = peers.len(), "admitted");
                self.admitted = true;
                let list = peers.clone();
                self.publish(|s| {
                    s.admitted = Some(list);
                    s.waiting = None;
                });
                self.report_media(true, None).await;
                if is_kine {
                    for peer in peers {
                        self.maybe_offer(peer, false).await;
                    }
                }
            }
            ServerMsg::Refused(refusal) => {
                tracing::info!(code = %refusal.code, "refused");
                // A refusal (the session is over) also settles a pending hang-up.
                self.pending_hangup = None;
                self.refused = true;
                let refusal = refusal.clone();
                self.publish(|s| s.refused = Some(refusal));
            }
            ServerMsg::LobbyWaiting {
                participant,
                reason,
                ..
            } => {
                if is_kine && self.cfg.auto_admit_lobby && *reason == WaitReason::AwaitingAdmission
                {
                    tracing::info!(%participant, "admitting");
                    self.send(ClientMsg::Admit {
                        participant: *participant,
                    })
                    .await
                    .ok();
                }
            }
            ServerMsg::PeerJoined { peer } => {
                if is_kine && self.admitted {
                    self.maybe_offer(peer, false).await;
                }
            }
            ServerMsg::PeerLeft {
                participant,
                reconnecting,
            } => {
                if *reconnecting {
                    if let Some(remote) = self.remotes.get_mut(participant) {
                        remote.epoch += 1;
                    }
                } else if let Some(remote) = self.remotes.remove(participant) {
                    remote.endpoint.close().await;
                    self.publish(|s| {
                        s.remotes.remove(participant);
                    });
                    self.report_media(false, None).await;
                }
            }
            ServerMsg::Offer { from, data } => {
                if is_kine {
                    tracing::warn!(%from, "ignoring an offer: the kiné is the only offerer");
                } else if let Err(e) = self.on_offer(*from, data).await {
                    tracing::warn!(%from, "answering an offer failed: {e}");
                }
            }
            ServerMsg::Answer { from, data } => {
                if let Err(e) = self.on_answer(*from, data).await {
                    tracing::warn!(%from, "applying an answer failed: {e}");
                }
            }
            ServerMsg::Candidate { from, data } => {
                if let Err(e) = self.on_candidate(*from, data).await {
                    tracing::debug!(%from, "remote candidate not used: {e}");
                }
            }
            ServerMsg::Ended {
                billable_seconds,
                reason,
            } => {
                tracing::info!(billable_seconds, "session ended");
                self.ended = true;
                self.pending_hangup = None;
                let ended = Ended {
                    billable_seconds: *billable_seconds,
                    reason: reason.clone(),
                };
                self.publish(|s| s.ended = Some(ended));
                self.close_all().await;
            }
            ServerMsg::Replaced => {
                tracing::info!("replaced by another connection");
                self.replaced = true;
                self.publish(|s| s.replaced = true);
                self.close_all().await;
            }
            ServerMsg::Error(refusal) => {
                tracing::info!(code = %refusal.code, "server error");
                let refusal = refusal.clone();
                self.publish(|s| s.last_error = Some(refusal));
            }
            ServerMsg::Pong => {}
        }
    }

    async fn answer_waiting(&mut self, reason: WaitReason) {
        let reply = match reason {
            WaitReason::ConsentRequired if self.cfg.consent => {
                // A minor's consent is the legal representative's: the attested parent's.
                let minor = self.welcome.session.minor;
                Some(ClientMsg::Consent {
                    text_version: self.welcome.session.consent_text_version.clone(),
                    representative_name: self.cfg.attest_name.clone().filter(|_| minor),
                    representative_relation: self.cfg.attest_relation.clone().filter(|_| minor),
                })
            }
            WaitReason::AttestationParent | WaitReason::AttestationAidant => {
                self.cfg.attest.map(|companion| ClientMsg::Attest {
                    companion,
                    name: self.cfg.attest_name.clone(),
                    relation: self.cfg.attest_relation.clone(),
                })
            }
            _ => None,
        };
        if let Some(reply) = reply {
            tracing::info!(kind = reply.kind(), "answering the waiting room");
            self.send(reply).await.ok();
        }
    }

    /// The kiné's offer rule. `force` bypasses the duplicate check (ICE failure recovery).
    async fn maybe_offer(&mut self, peer: &PeerInfo, force: bool) {
        if !peer.admitted || peer.role == Role::Kine || peer.participant == self.welcome.participant
        {
            return;
        }
        if let Err(e) = self.offer(peer.participant, force).await {
            tracing::warn!(remote = %peer.participant, "offering failed: {e}");
        }
    }

    async fn offer(&mut self, to: Uuid, force: bool) -> Result<()> {
        let restart = match self.remotes.get(&to) {
            Some(r) if r.state != ConnectionState::Closed => {
                // An offer still waiting for its answer, sent since the remote last left or
                // we last rejoined, will be answered: a second one now would race it (the
                // first answer would be applied to the second offer).
                let awaiting = r.endpoint.awaiting_answer().await;
                if !force && r.offered_in_epoch == Some(r.epoch) && awaiting {
                    return Ok(());
                }
                let known = r.endpoint.remote_fingerprint().await.is_some();
                if awaiting && !known {
                    // An offer never answered, from an earlier epoch (lost with a socket or a
                    // server that went away): the other side may have applied it. Begin again
                    // on a new connection rather than offer again on this one (webrtc-rs then
                    // loses the answerer's video).
                    self.new_remote(to, Side::Offerer).await?;
                    false
                } else {
                    known
                }
            }
            _ => {
                self.new_remote(to, Side::Offerer).await?;
                false
            }
        };
        self.send_offer(to, restart).await
    }

    async fn send_offer(&mut self, to: Uuid, ice_restart: bool) -> Result<()> {
        let remote = self
            .remotes
            .get_mut(&to)
            .ok_or(PeerError::Protocol("no endpoint".into()))?;
        let offer = remote.endpoint.offer(ice_restart).await?;
        remote.offered_in_epoch = Some(remote.epoch);
        tracing::info!(remote = %to, ice_restart, "sending an offer");
        // Sent before this task reads the endpoint's queued candidates: offer first.
        self.send(ClientMsg::Offer {
            to: Some(to),
            data: offer.to_data(),
        })
        .await
    }

    /// Creates (or replaces) the endpoint for `remote`.
    async fn new_remote(&mut self, remote: Uuid, side: Side) -> Result<()> {
        if let Some(old) = self.remotes.remove(&remote) {
            old.endpoint.close().await;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let tx = self.internal_tx.clone();
        let sink: EventSink = Arc::new(move |event| {
            let _ = tx.send(Internal::Endpoint {
                remote,
                generation,
                event,
            });
        });
        let config = EndpointConfig {
            ice_servers: self.welcome.ice_servers.clone(),
            // The session's privacy mode (from `welcome`) or the peer's own choice.
            relay_only: self.cfg.relay_only || self.welcome.relay_only,
            udp_bind: self.cfg.udp_bind.clone(),
            video: self.cfg.video,
        };
        let endpoint = Endpoint::new(&config, side, sink).await?;
        self.remotes.insert(
            remote,
            Remote {
                endpoint,
                generation,
                state: ConnectionState::New,
                data_open: false,
                epoch: 0,
                offered_in_epoch: None,
            },
        );
        self.publish(|s| {
            s.remotes.insert(
                remote,
                RemoteMedia {
                    state: ConnectionState::New,
                    data_open: false,
                },
            );
        });
        Ok(())
    }

    async fn on_offer(&mut self, from: Uuid, data: &serde_json::value::RawValue) -> Result<()> {
        let offer = SessionDescription::from_data(data)?;
        let replace = match self.remotes.get(&from) {
            None => true,
            Some(r) => {
                let known = r.endpoint.remote_fingerprint().await;
                matches!(r.state, ConnectionState::Closed | ConnectionState::Failed)
                    || known.is_some_and(|fp| Some(fp.as_str()) != offer.fingerprint())
            }
        };
        if replace {
            self.new_remote(from, Side::Answerer).await?;
        }
        let remote = self
            .remotes
            .get(&from)
            .ok_or(PeerError::Protocol("no endpoint".into()))?;
        let answer = remote.endpoint.accept_offer(&offer).await?;
        tracing::info!(remote = %from, "sending an answer");
        self.send(ClientMsg::Answer {
            to: Some(from),
            data: answer.to_data(),
        })
        .await
    }

    async fn on_answer(&mut self, from: Uuid, data: &serde_json::value::RawValue) -> Result<()> {
        let answer = SessionDescription::from_data(data)?;
        let Some(remote) = self.remotes.get(&from) else {
            return Err(PeerError::Protocol("an answer without an offer".into()));
        };
        if !remote.endpoint.awaiting_answer().await {
            tracing::debug!(%from, "ignoring a stale answer");
            return Ok(());
        }
        let known = remote.endpoint.remote_fingerprint().await;
        if known.is_some_and(|fp| Some(fp.as_str()) != answer.fingerprint()) {
            // The other side answered from a new RTCPeerConnection (a reloaded page, a new
            // process): an ICE restart cannot bridge that, so start over with a new one too.
            tracing::info!(remote = %from, "the remote connection is new: starting over");
            self.new_remote(from, Side::Offerer).await?;
            return self.send_offer(from, false).await;
        }
        remote.endpoint.accept_answer(&answer).await
    }

    async fn on_candidate(&mut self, from: Uuid, data: &serde_json::value::RawValue) -> Result<()> {
        let candidate = CandidateInit::from_data(data)?;
        if !self.remotes.contains_key(&from) {
            if self.welcome.role == Role::Kine {
                return Err(PeerError::Protocol(
                    "a candidate from a participant without a connection".into(),
                ));
            }
            // The answerer's endpoint keeps it until the offer arrives.
            self.new_remote(from, Side::Answerer).await?;
        }
        match self.remotes.get(&from) {
            Some(remote) => remote.endpoint.add_remote_candidate(candidate).await,
            None => Ok(()),
        }
    }

    async fn on_internal(&mut self, event: Internal) {
        match event {
            Internal::Endpoint {
                remote,
                generation,
                event,
            } => self.on_endpoint_event(remote, generation, event).await,
            Internal::RestartIfStillDisconnected { remote, generation } => {
                let still = self.remotes.get(&remote).is_some_and(|r| {
                    r.generation == generation && r.state == ConnectionState::Disconnected
                });
                if still && !self.ended && !self.hung_up {
                    tracing::info!(%remote, "still disconnected: restarting ICE");
                    if let Err(e) = self.offer(remote, true).await {
                        tracing::warn!(%remote, "ICE restart failed: {e}");
                    }
                }
            }
        }
    }

    async fn on_endpoint_event(&mut self, id: Uuid, generation: u64, event: EndpointEvent) {
        let Some(remote) = self
            .remotes
            .get_mut(&id)
            .filter(|r| r.generation == generation)
        else {
            return; // From an endpoint that has been replaced or closed.
        };
        match event {
            EndpointEvent::Candidate(candidate) => {
                self.send(ClientMsg::Candidate {
                    to: Some(id),
                    data: candidate.to_data(),
                })
                .await
                .ok();
            }
            EndpointEvent::State(state) => {
                remote.state = state;
                tracing::info!(remote = %id, ?state, "connection state");
                self.publish(|s| {
                    if let Some(m) = s.remotes.get_mut(&id) {
                        m.state = state;
                    }
                });
                let incident = (state == ConnectionState::Failed).then_some("ice_failed");
                self.report_media(false, incident).await;
                if self.welcome.role == Role::Kine && !self.ended && !self.hung_up && !self.replaced
                {
                    match state {
                        ConnectionState::Failed => {
                            if let Err(e) = self.offer(id, true).await {
                                tracing::warn!(remote = %id, "ICE restart failed: {e}");
                            }
                        }
                        ConnectionState::Disconnected => {
                            let tx = self.internal_tx.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(DISCONNECTED_GRACE).await;
                                let _ = tx.send(Internal::RestartIfStillDisconnected {
                                    remote: id,
                                    generation,
                                });
                            });
                        }
                        _ => {}
                    }
                }
            }
            EndpointEvent::DataOpen | EndpointEvent::DataClosed => {
                let open = event == EndpointEvent::DataOpen;
                remote.data_open = open;
                tracing::info!(remote = %id, open, "data channel");
                self.publish(|s| {
                    if let Some(m) = s.remotes.get_mut(&id) {
                        m.data_open = open;
                    }
                });
            }
            EndpointEvent::Data(text) => {
                let _ = self.out.data.send(DataMessage { from: id, text });
            }
        }
    }

    /// Reports the aggregate media state and video flags when they changed, or (with `force`,
    /// after `admitted`) again if anything was ever connected, or when the heartbeat is due.
    async fn report_media(&mut self, force: bool, incident: Option<&str>) {
        let connected = self
            .remotes
            .values()
            .any(|r| r.state == ConnectionState::Connected);
        self.note_media(connected);
        if !self.admitted || self.hung_up || self.ended || self.replaced || self.ws.is_none() {
            return;
        }
        let state = if connected {
            MediaState::Connected
        } else {
            MediaState::Disconnected
        };
        let flows: Vec<_> = self
            .remotes
            .values()
            .filter(|r| r.state == ConnectionState::Connected)
            .map(|r| r.endpoint.video())
            .collect();
        let video_in = flows.iter().any(|f| f.received);
        let video_out = flows.iter().any(|f| f.sent);
        let now = (state, video_in, video_out);
        let heartbeat = Duration::from_secs(u64::from(self.welcome.heartbeat_seconds.max(1)));
        let due =
            self.reported.is_some() && self.reported_at.is_none_or(|at| at.elapsed() >= heartbeat);
        let changed = self.reported != Some(now);
        let worth_saying = match self.reported {
            None => connected,
            Some(_) => changed || force || due || incident.is_some(),
        };
        if !worth_saying {
            return;
        }
        let msg = ClientMsg::Media {
            state,
            video_in: Some(video_in),
            video_out: Some(video_out),
            incident: incident.map(str::to_owned),
        };
        if self.send(msg).await.is_ok() {
            if changed {
                tracing::info!(?state, video_in, video_out, "media state reported");
            }
            self.reported = Some(now);
            self.reported_at = Some(tokio::time::Instant::now());
            self.publish(|s| s.reported_media = Some(state));
        }
    }

    async fn close_all(&mut self) {
        for remote in self.remotes.values() {
            remote.endpoint.close().await;
        }
    }
}

async fn next_frame(
    ws: &mut Option<Ws>,
) -> Option<std::result::Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

/// Returns at `at`, never when there is none.
async fn due(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
