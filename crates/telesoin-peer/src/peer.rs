//! The public handle on a call: [`Peer`].
//!
//! `Peer::join` opens the socket and returns once the server said `welcome`; from then on a
//! background task (see [`crate::call`]) runs the call, and the handle observes it three ways:
//! - every [`ServerMsg`] received, in order, through [`Peer::next_message`] and the selective
//!   [`Peer::wait_for`] (which leaves non-matching messages queued for later);
//! - every data-channel message, through [`Peer::recv_data`];
//! - a [`CallState`] snapshot (admission, media, end), through [`Peer::state`] and the
//!   `wait_*` helpers. Reading the state never consumes a message.
//!
//! Every wait takes an explicit timeout and fails with [`PeerError::Timeout`] when it runs out.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use telesoin_proto::Refusal;
use telesoin_proto::signal::{
    ClientMsg, IceServer, MediaState, PeerInfo, Role, ServerMsg, SessionInfo, WaitReason,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::call::{CallTask, Command, Outputs, connect_and_join};
use crate::config::PeerConfig;
use crate::endpoint::ConnectionState;
use crate::error::{PeerError, Result};
use crate::link::JoinLink;

/// What `welcome` said. Its `Debug` leaves out the kiné's name and the TURN credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Welcome {
    pub protocol: u32,
    pub participant: Uuid,
    pub role: Role,
    pub session: SessionInfo,
    pub ice_servers: Vec<IceServer>,
    /// The session is in privacy mode: TURN candidates only.
    pub relay_only: bool,
    pub peers: Vec<PeerInfo>,
    pub resumed: bool,
    /// Report `media` at least this often (`welcome.heartbeat_seconds`).
    pub heartbeat_seconds: u32,
}

impl std::fmt::Debug for Welcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Welcome")
            .field("protocol", &self.protocol)
            .field("participant", &self.participant)
            .field("role", &self.role)
            .field("session", &self.session.session)
            .field("ice_servers", &self.ice_servers.len())
            .field("peers", &self.peers)
            .field("relay_only", &self.relay_only)
            .field("resumed", &self.resumed)
            .finish()
    }
}

/// The end of the session, as announced by `ended`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub billable_seconds: i64,
    pub reason: String,
}

/// One remote participant's connection, as seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Its RTCPeerConnection state.
    pub state: ConnectionState,
    /// Whether the `telesoin` data channel is open.
    pub data_open: bool,
}

impl RemoteMedia {
    /// Connected and the data channel open: ICE and DTLS are done and SCTP runs.
    pub fn is_ready(&self) -> bool {
        self.state == ConnectionState::Connected && self.data_open
    }
}

/// A snapshot of the call as this peer sees it.
#[derive(Debug, Clone, Default)]
pub struct CallState {
    /// Whether the signaling socket is open.
    pub socket_open: bool,
    /// The last `waiting` reason since the last `welcome`, until admission.
    pub waiting: Option<WaitReason>,
    /// The peers listed by `admitted`, once admitted (reset by a reconnection's `welcome`).
    pub admitted: Option<Vec<PeerInfo>>,
    /// One entry per remote participant this peer has a connection with.
    pub remotes: BTreeMap<Uuid, RemoteMedia>,
    /// The media state last reported to the server with `media`.
    pub reported_media: Option<MediaState>,
    /// Set by `ended`.
    pub ended: Option<Ended>,
    /// Set by `refused`.
    pub refused: Option<Refusal>,
    /// Set by `replaced`.
    pub replaced: bool,
    /// The last `error`.
    pub last_error: Option<Refusal>,
    /// The socket was lost and is being reopened by itself ([`PeerConfig::reconnect`]).
    pub reconnecting: bool,
    /// How many times the socket was reopened by itself.
    pub rejoins: u32,
    /// The `welcome` of the last reconnection (by itself or asked), if any.
    pub last_welcome: Option<Welcome>,
}

impl CallState {
    /// The socket is closed and nothing will reopen it by itself.
    pub fn gone(&self) -> bool {
        !self.socket_open && !self.reconnecting
    }

    /// The first remote whose connection is ready (connected, data channel open).
    pub fn ready_remote(&self) -> Option<Uuid> {
        self.remotes
            .iter()
            .find(|(_, m)| m.is_ready())
            .map(|(id, _)| *id)
    }

    /// The first remote whose RTCPeerConnection is connected (data channel or not: a browser
    /// kiné opens none).
    pub fn connected_remote(&self) -> Option<Uuid> {
        self.remotes
            .iter()
            .find(|(_, m)| m.state == ConnectionState::Connected)
            .map(|(id, _)| *id)
    }
}

/// A message received on a data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// The remote participant it came from.
    pub from: Uuid,
    pub text: String,
}

/// A participant in a call: a signaling socket plus one WebRTC connection per remote.
///
/// Dropping it ends the background task, which closes the connections and the socket.
pub struct Peer {
    welcome: Welcome,
    commands: mpsc::UnboundedSender<Command>,
    messages: mpsc::UnboundedReceiver<ServerMsg>,
    /// Messages read from `messages` but not yet taken (see [`Peer::wait_for`]).
    inbox: VecDeque<ServerMsg>,
    data: mpsc::UnboundedReceiver<DataMessage>,
    state: watch::Receiver<CallState>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("welcome", &self.welcome)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// Connects, sends `join`, and returns once `welcome` arrived. A `refused` answer is
    /// [`PeerError::Refused`] with the server's code and messages.
    pub async fn join(cfg: PeerConfig) -> Result<Peer> {
        let link = JoinLink::parse(&cfg.link)?;
        let (ws, welcome) = connect_and_join(&cfg, &link, None).await?;
        tracing::info!(participant = %welcome.participant, role = ?welcome.role, resumed = welcome.resumed, "joined");
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (messages_tx, messages) = mpsc::unbounded_channel();
        let (data_tx, data) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(CallState {
            socket_open: true,
            ..CallState::default()
        });
        let out = Outputs {
            messages: messages_tx,
            data: data_tx,
            state: state_tx,
        };
        let task = CallTask::spawn(Arc::new(cfg), link, ws, welcome.clone(), commands_rx, out);
        Ok(Peer {
            welcome,
            commands,
            messages,
            inbox: VecDeque::new(),
            data,
            state,
            task: Some(task),
        })
    }

    /// What the last `welcome` said (updated by [`Peer::reconnect`]).
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// This participant's id.
    pub fn participant(&self) -> Uuid {
        self.welcome.participant
    }

    /// This participant's role.
    pub fn role(&self) -> Role {
        self.welcome.role
    }

    /// The call as it stands now.
    pub fn state(&self) -> CallState {
        self.state.borrow().clone()
    }

    /// The next server message, in order of arrival (`pong`s answering the peer's own
    /// keepalive pings are not queued; those answering [`Peer::send`] pings are). Fails with [`PeerError::SocketClosed`]
    /// once the socket is closed and every message received before was taken.
    pub async fn next_message(&mut self, timeout: Duration) -> Result<ServerMsg> {
        self.wait_for("a server message", timeout, |_| true).await
    }

    /// The next server message if one is already here.
    pub fn try_next_message(&mut self) -> Option<ServerMsg> {
        self.pull();
        self.inbox.pop_front()
    }

    /// Takes the first message (queued or to come) that matches `pred`; messages that do not
    /// match stay queued, in order, for later calls. `what` names the wait in the timeout
    /// error.
    pub async fn wait_for(
        &mut self,
        what: &'static str,
        timeout: Duration,
        mut pred: impl FnMut(&ServerMsg) -> bool,
    ) -> Result<ServerMsg> {
        let deadline = Instant::now() + timeout;
        let mut scanned = 0;
        loop {
            // Read the socket state before draining: whatever arrived before a close is
            // already queued by the time the close is published.
            let gone = self.state.borrow_and_update().gone();
            self.pull();
            if let Some(i) = self.inbox.iter().skip(scanned).position(&mut pred) {
                return Ok(self.inbox.remove(scanned + i).expect("index is in range"));
            }
            scanned = self.inbox.len();
            if gone {
                return Err(PeerError::SocketClosed);
            }
            tokio::select! {
                msg = self.messages.recv() => match msg {
                    Some(msg) => self.inbox.push_back(msg),
                    None => return Err(PeerError::Shutdown),
                },
                changed = self.state.changed() => {
                    if changed.is_err() {
                        return Err(PeerError::Shutdown);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Err(PeerError::Timeout { what, after: timeout }),
            }
        }
    }

    fn pull(&mut self) {
        while let Ok(msg) = self.messages.try_recv() {
            self.inbox.push_back(msg);
        }
    }

    /// Waits until `check` returns `Some` for the call's state, and returns that.
    pub async fn wait_state<T>(
        &mut self,
        what: &'static str,
        timeout: Duration,
        mut check: impl FnMut(&CallState) -> Option<Result<T>>,
    ) -> Result<T> {
        let wait = async {
            loop {
                if let Some(result) = check(&self.state.borrow_and_update()) {
                    return result;
                }
                if self.state.changed().await.is_err() {
                    return Err(PeerError::Shutdown);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| PeerError::Timeout {
                what,
                after: timeout,
            })?
    }

    /// Waits until admitted and returns the peers listed by `admitted`. Fails at once on
    /// `refused`, `replaced`, `ended` or a closed socket.
    pub async fn admitted(&mut self, timeout: Duration) -> Result<Vec<PeerInfo>> {
        self.wait_state("admission", timeout, |s| {
            if let Some(peers) = &s.admitted {
                Some(Ok(peers.clone()))
            } else if let Some(refusal) = &s.refused {
                Some(Err(PeerError::Refused(refusal.clone())))
            } else {
                terminal(s).or_else(|| s.gone().then_some(Err(PeerError::SocketClosed)))
            }
        })
        .await
    }

    /// Waits until a connection is ready: RTCPeerConnection connected (ICE and DTLS done) and
    /// the data channel open. Returns the remote participant's id.
    pub async fn wait_media_connected(&mut self, timeout: Duration) -> Result<Uuid> {
        self.wait_state("media connected", timeout, |s| {
            s.ready_remote().map(Ok).or_else(|| terminal(s))
        })
        .await
    }

    /// Waits until an RTCPeerConnection is connected, data channel or not (a browser kiné
    /// opens none). Returns the remote participant's id.
    pub async fn wait_connected(&mut self, timeout: Duration) -> Result<Uuid> {
        self.wait_state("connection", timeout, |s| {
            s.connected_remote().map(Ok).or_else(|| terminal(s))
        })
        .await
    }

    /// Kiné: lets a waiting participant in (`admit`).
    pub async fn admit(&self, participant: Uuid) -> Result<()> {
        self.send(ClientMsg::Admit { participant }).await
    }

    /// Sends any client message as is (for tests of the server's rules).
    pub async fn send(&self, msg: ClientMsg) -> Result<()> {
        self.ask(|reply| Command::Send(msg, reply)).await?
    }

    /// Sends a text on every open data channel; returns how many took it.
    pub async fn send_data(&self, text: &str) -> Result<usize> {
        self.ask(|reply| Command::SendData(text.to_owned(), reply))
            .await?
    }

    /// The next data-channel message.
    pub async fn recv_data(&mut self, timeout: Duration) -> Result<DataMessage> {
        tokio::time::timeout(timeout, self.data.recv())
            .await
            .map_err(|_| PeerError::Timeout {
                what: "a data-channel message",
                after: timeout,
            })?
            .ok_or(PeerError::Shutdown)
    }

    /// Leaves the call (`hangup`), waits up to `timeout` for `ended` (the kiné's hangup ends
    /// the session) or for the server to close the socket, then closes everything. Returns the
    /// billable seconds if `ended` arrived.
    pub async fn hangup(&mut self, timeout: Duration) -> Result<Option<i64>> {
        self.ask(Command::Hangup).await??;
        let outcome = self
            .wait_state("the end of the session", timeout, |s| {
                (s.ended.is_some() || s.gone()).then_some(Ok(()))
            })
            .await;
        let ended = self
            .state
            .borrow()
            .ended
            .as_ref()
            .map(|e| e.billable_seconds);
        self.shutdown().await;
        match outcome {
            Ok(()) | Err(PeerError::Timeout { .. }) => Ok(ended),
            Err(e) => Err(e),
        }
    }

    /// Sends `hangup` and returns at once, without waiting for `ended`: the hang-up is kept until
    /// the server acknowledges it and, if the socket is lost first, replayed after the
    /// reconnection, dated when it was made (`ago_ms`).
    pub async fn send_hangup(&self) -> Result<()> {
        self.ask(Command::Hangup).await?
    }

    /// Drops the signaling socket without a closing handshake or `hangup`, like a lost
    /// network. The WebRTC connections stay up; the socket stays closed (no reconnection by
    /// itself) until [`Peer::reconnect`] opens a new one.
    pub async fn close_socket_abruptly(&mut self) -> Result<()> {
        self.ask(Command::DropSocket).await
    }

    /// Opens a new socket and joins again with the same token (an open socket is dropped
    /// first). The server resumes the seat (`welcome.resumed`); once admitted again, the kiné
    /// re-offers with an ICE restart, on the fresh TURN credentials of the new `welcome`.
    /// [`CallState::admitted`] is reset until the new `admitted`.
    pub async fn reconnect(&mut self) -> Result<&Welcome> {
        let welcome = self.ask(Command::Reconnect).await??;
        self.welcome = welcome;
        Ok(&self.welcome)
    }

    /// Like [`Peer::reconnect`], through another base URL: `link` is a join link to another node
    /// of the same cluster (its token must be the same seat's; normally the same token). Used
    /// when the node holding the socket is gone; the WebRTC connections stay up meanwhile.
    pub async fn reconnect_via(&mut self, link: &str) -> Result<&Welcome> {
        let link = Box::new(JoinLink::parse(link)?);
        let welcome = self
            .ask(|reply| Command::ReconnectVia(link, reply))
            .await??;
        self.welcome = welcome;
        Ok(&self.welcome)
    }

    /// The `welcome` of the socket open now: the last reconnection's (by itself or asked), else
    /// the first.
    pub fn current_welcome(&self) -> Welcome {
        self.state
            .borrow()
            .last_welcome
            .clone()
            .unwrap_or_else(|| self.welcome.clone())
    }

    /// Waits until the socket was reopened by itself at least `n` times in all and is open.
    pub async fn wait_rejoined(&mut self, n: u32, timeout: Duration) -> Result<Welcome> {
        let first = self.welcome.clone();
        self.wait_state("a reconnection by itself", timeout, |s| {
            if s.rejoins >= n && s.socket_open {
                Some(Ok(s.last_welcome.clone().unwrap_or_else(|| first.clone())))
            } else {
                terminal(s).or_else(|| s.gone().then_some(Err(PeerError::SocketClosed)))
            }
        })
        .await
    }

    /// Stops the background task: closes the WebRTC connections and the socket (with a
    /// closing handshake, without `hangup`). Messages already received stay readable.
    pub async fn shutdown(&mut self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown(reply)).is_ok() {
            let _ = done.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| PeerError::Shutdown)?;
        answer.await.map_err(|_| PeerError::Shutdown)
    }
}

/// The states after which nothing more will happen on this call.
fn terminal<T>(s: &CallState) -> Option<Result<T>> {
    if s.replaced {
        Some(Err(PeerError::Replaced))
    } else if s.ended.is_some() {
        Some(Err(PeerError::Ended))
    } else {
        s.refused
            .as_ref()
            .map(|r| Err(PeerError::Refused(r.clone())))
    }
}
