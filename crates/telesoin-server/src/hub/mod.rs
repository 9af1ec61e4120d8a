//! The hub: rooms, seats, admission and relay.
//!
//! One room per open session, one seat per participant. A seat outlives its socket for the grace
//! period, so a reconnect with the same token finds it (and its admission) again. Every decision
//! about who may enter is asked of `telesoin-core`; every frame leaves through the [`Bus`].
//!
//! Invariants:
//! - nothing is relayed from or to a seat that is not admitted, nor across rooms;
//! - relayed payloads are forwarded byte for byte (`data` is never re-serialized);
//! - presence events are appended with server time before anyone is told (a seat's end waits
//!   a few seconds at most: it stays queued and is written when the store takes it);
//! - a session is finalized exactly once (the store's guard), by hangup, end, or the sweep.
//!
//! One file per concern, all `impl Hub`: this one holds the hub, its rooms and seats and the
//! helpers every part uses (append an event, send a frame); `join` seats a verified link and
//! asks who may enter (lobby, admission, refusal, attestation, consent); `relay` forwards
//! signaling; `evidence` records what billing counts (media reports and heartbeats, hang-ups and
//! leaves, replayed or not, the loss a rejoin reports); `presence` follows lost sockets and their
//! grace; `lifecycle` ends, finalizes,
//! cancels, recovers, sweeps and drains; `restore` puts seats back from the record when the
//! cluster's shared state lost them; `writer` appends every presence event in order, in
//! batches, and never drops the end of a seat; `rejoin` bounds joins per seat and per link.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use telesoin_bus::{Attachment, Bus, Outbound, SharedState};
use telesoin_core::admission::{InPersonRule, WaitReason};
use telesoin_core::billing::PresenceKind;
use telesoin_core::model::{Companion, Role};
use telesoin_core::{ParticipantId, RefusalCode, SessionId};
use telesoin_proto::signal::{self as wire, ServerMsg};
use telesoin_store::{NewEvent, Store};

use crate::events::Events;
use crate::rooms::{RoomValue, Rooms};

mod evidence;
mod join;
mod lifecycle;
mod presence;
mod rejoin;
mod relay;
mod restore;
mod writer;

pub use rejoin::RejoinPolicy;

/// WebSocket close codes used by the hub (4000-4999 are the application's own).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const REFUSED: u16 = 4001;
    pub const REPLACED: u16 = 4002;
    pub const ENDED: u16 = 4003;
}

/// What the hub needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub grace: Duration,
    /// How billing reads the evidence (grace, evidence gap, audio-only).
    pub billing: telesoin_core::billing::Policy,
    /// The clients' media heartbeat period (`welcome.heartbeat_seconds`).
    pub heartbeat: Duration,
    pub in_person_rule: InPersonRule,
    /// How often a seat, or a link, may join again.
    pub rejoin: RejoinPolicy,
    pub ice: crate::turn::IceConfig,
    /// Whether the store takes writes (shared with /readyz and /metrics).
    pub health: Arc<crate::health::Health>,
    /// Whether changes carry their platforms' webhooks (none while no endpoint exists).
    pub webhooks: Arc<crate::platform::webhooks::Announcer>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Seat {
    role: Role,
    /// The socket currently attached, if any.
    attachment: Option<Attachment>,
    admitted: bool,
    admitted_by_kine: bool,
    attested: Option<Companion>,
    media: bool,
    /// The media report last persisted for this seat, and when (heartbeats are coarse).
    #[serde(default)]
    report: Option<telesoin_core::billing::MediaReport>,
    #[serde(default)]
    evidence_at: Option<DateTime<Utc>>,
    /// When the socket was lost, while the seat waits for a reconnect.
    lost_at: Option<DateTime<Utc>>,
    /// The last reason this seat was told to wait.
    waiting: Option<wire::WaitReason>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Room {
    seats: HashMap<ParticipantId, Seat>,
    /// The sockets whose seats were put back from the record since the shared state lost the
    /// room (see `restore`): a seat still on that socket was not announced by a join.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    restored: HashMap<ParticipantId, Attachment>,
}

impl RoomValue for Room {
    fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }
}

impl Room {
    fn kine_present(&self) -> bool {
        self.seats
            .values()
            .any(|s| s.role == Role::Kine && s.admitted && s.attachment.is_some())
    }

    fn peers_except(&self, me: ParticipantId) -> Vec<wire::PeerInfo> {
        self.seats
            .iter()
            .filter(|(p, s)| **p != me && s.attachment.is_some())
            .map(|(p, s)| wire::PeerInfo {
                participant: p.0,
                role: wire_role(s.role),
                admitted: s.admitted,
            })
            .collect()
    }

    fn admitted_others(&self, me: ParticipantId) -> Vec<ParticipantId> {
        self.seats
            .iter()
            .filter(|(p, s)| **p != me && s.admitted && s.attachment.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    fn kine_seat(&self) -> Option<ParticipantId> {
        self.seats
            .iter()
            .find(|(_, s)| s.role == Role::Kine && s.attachment.is_some())
            .map(|(p, _)| *p)
    }
}

pub fn wire_role(r: Role) -> wire::Role {
    match r {
        Role::Kine => wire::Role::Kine,
        Role::Patient => wire::Role::Patient,
        Role::Companion => wire::Role::Companion,
    }
}

fn wire_wait(r: WaitReason) -> wire::WaitReason {
    match r {
        WaitReason::KineAbsent => wire::WaitReason::KineAbsent,
        WaitReason::AwaitingAdmission => wire::WaitReason::AwaitingAdmission,
        WaitReason::ConsentRequired => wire::WaitReason::ConsentRequired,
    }
}

fn text(msg: &ServerMsg) -> Outbound {
    Outbound::Text(msg.to_text().into())
}

/// What a successful join gives the socket.
#[derive(Debug)]
pub struct Joined {
    pub attachment: Attachment,
    pub session: SessionId,
    pub role: Role,
    pub welcome: ServerMsg,
    pub resumed: bool,
    /// The join wrote the seat's `admitted` with its `joined` (the core let it in at once):
    /// after the welcome it is announced, not evaluated again.
    pub admitted: bool,
    /// The session as the join read it (the first evaluation does not read it again).
    pub row: telesoin_store::SessionRow,
    /// What the join read of the patient's side (a seat of that side), for the same.
    pub facts: Option<PatientReads>,
    /// How long its stages took (see [`JoinTimings`]).
    pub timings: JoinTimings,
}

/// How long the stages of a join took in the hub: the link's read (with the patient's facts
/// on the patient's side), the seating in between (the room, the bus, the core's decision),
/// and the write of its events (the wait for the presence writer included). The socket logs
/// them with its own stages at debug (target `telesoin_server::join_timing`), for
/// `bench/run --join-timings`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinTimings {
    pub link: std::time::Duration,
    pub seat: std::time::Duration,
    pub write: std::time::Duration,
}

/// What admission reads of the patient's side, as the join read it: the patient, visits and
/// consents (one statement), and the HN price to accept and the one accepted (read with the
/// link). The first evaluation decides with them rather than reading them again.
#[derive(Debug, Clone)]
pub struct PatientReads {
    pub facts: telesoin_store::AdmissionFacts,
    pub price: telesoin_core::admission::PriceAcceptance,
}

pub struct Hub {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    cfg: HubConfig,
    /// In this process (one node) or shared by the cluster; see [`crate::rooms`].
    rooms: Rooms<Room>,
    draining: AtomicBool,
    /// Flipped once by [`Hub::drain`]: every socket task of this node says goodbye.
    going_away: tokio::sync::watch::Sender<bool>,
    /// How many upgraded sockets this node still holds (the shutdown waits for none).
    sockets: tokio::sync::watch::Sender<usize>,
    events: Arc<Events>,
    /// The sockets this node holds and the seats they stand for: what rebuilds the shared state
    /// when it is lost (see `restore`).
    local: parking_lot::Mutex<HashMap<ParticipantId, restore::LocalSocket>>,
    /// Whether this node's marker in the shared state was written (see `restore`).
    marked: AtomicBool,
    /// Kiné hang-ups the store could not write (session, when it was made): applied by
    /// [`Hub::check_store`] once writing works again.
    pending_ends: parking_lot::Mutex<Vec<(SessionId, DateTime<Utc>)>>,
    /// Every presence event of this node, in order, in batches; see [`writer`].
    writer: writer::PresenceWriter,
    /// Joins per seat and per link; see [`rejoin`].
    rejoins: rejoin::Rejoins,
}

/// Held by a socket's task while it runs; see [`Hub::socket_opened`].
#[derive(Debug)]
pub struct SocketGuard(tokio::sync::watch::Sender<usize>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("rooms", &self.rooms)
            .field("node", &self.bus.node())
            .finish_non_exhaustive()
    }
}

type HubResult<T> = Result<T, RefusalCode>;

/// How long a seat's end waits for its write before the hub goes on (the write stays queued).
const KEPT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn new_event(
    at: DateTime<Utc>,
    who: Option<(ParticipantId, Role)>,
    kind: PresenceKind,
    detail: Option<String>,
) -> NewEvent {
    NewEvent {
        at,
        participant: who.map(|w| w.0),
        role: who.map(|w| w.1),
        kind,
        detail,
        announce: None,
        opens_session: false,
        expect_last_seq: None,
    }
}

fn store_down(e: telesoin_store::StoreError) -> RefusalCode {
    tracing::warn!(error = %e, "store unavailable: refusing");
    RefusalCode::Unavailable
}

impl Hub {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        cfg: HubConfig,
        events: Arc<Events>,
    ) -> Arc<Self> {
        Self::build(store, bus, Rooms::local(), cfg, events)
    }

    /// A hub of a cluster: rooms live in the shared state, so that every node sees them.
    pub fn clustered(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        shared: Arc<dyn SharedState>,
        cfg: HubConfig,
        events: Arc<Events>,
    ) -> Arc<Self> {
        Self::build(store, bus, Rooms::shared(shared), cfg, events)
    }

    fn build(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        rooms: Rooms<Room>,
        cfg: HubConfig,
        events: Arc<Events>,
    ) -> Arc<Self> {
        let writer = writer::PresenceWriter::new(store.clone(), cfg.health.clone());
        let rejoins = rejoin::Rejoins::new(cfg.rejoin);
        Arc::new(Hub {
            writer,
            rejoins,
            store,
            bus,
            cfg,
            rooms,
            draining: AtomicBool::new(false),
            going_away: tokio::sync::watch::channel(false).0,
            sockets: tokio::sync::watch::channel(0).0,
            events,
            local: parking_lot::Mutex::new(HashMap::new()),
            marked: AtomicBool::new(false),
            pending_ends: parking_lot::Mutex::new(Vec::new()),
        })
    }

    fn is_cluster(&self) -> bool {
        matches!(self.rooms, Rooms::Shared(_))
    }

    /// Where domain events go (the audit trail).
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// What makes the platforms' webhooks of a change, written in its transaction.
    pub fn webhooks(&self) -> &Arc<crate::platform::webhooks::Announcer> {
        &self.cfg.webhooks
    }

    pub fn grace(&self) -> Duration {
        self.cfg.grace
    }

    pub fn billing_policy(&self) -> &telesoin_core::billing::Policy {
        &self.cfg.billing
    }

    /// Appends a presence event through the writer and waits until it is written. A join's
    /// own events fail fast when the store cannot take them (the join is refused); an event
    /// the seat rule refuses (the seat left meanwhile) is `not_admitted`.
    async fn event(
        &self,
        session: SessionId,
        at: DateTime<Utc>,
        who: Option<(ParticipantId, Role)>,
        kind: PresenceKind,
        detail: Option<String>,
    ) -> HubResult<i64> {
        self.event_announced(session, new_event(at, who, kind, detail))
            .await
    }

    /// [`Hub::event`] of an event that may carry its webhook (written with it, or not at all).
    async fn event_announced(&self, session: SessionId, event: NewEvent) -> HubResult<i64> {
        match self.append_announced(session, event).await? {
            telesoin_store::Appended::Written(seq) => Ok(seq),
            telesoin_store::Appended::SeatLeft | telesoin_store::Appended::Superseded => {
                Err(RefusalCode::NotAdmitted)
            }
        }
    }

    /// [`Hub::event`], telling apart the seat rule's refusal.
    async fn append(
        &self,
        session: SessionId,
        at: DateTime<Utc>,
        who: Option<(ParticipantId, Role)>,
        kind: PresenceKind,
        detail: Option<String>,
    ) -> HubResult<telesoin_store::Appended> {
        self.append_announced(session, new_event(at, who, kind, detail))
            .await
    }

    /// [`Hub::append`] of an event that may carry its webhook.
    async fn append_announced(
        &self,
        session: SessionId,
        event: NewEvent,
    ) -> HubResult<telesoin_store::Appended> {
        self.writer
            .append(session, event, false)
            .await
            .map_err(store_down)
    }

    /// Appends events of one seat's join together (one transaction, in their order): a join's
    /// own events, failing fast like [`Hub::append`].
    async fn append_all(
        &self,
        session: SessionId,
        events: Vec<NewEvent>,
    ) -> HubResult<Vec<telesoin_store::Appended>> {
        self.writer
            .append_all(session, events, false)
            .await
            .map_err(store_down)
    }

    /// Appends what ends or refuses a seat (`socket_lost`, `left`, `refused`): never dropped.
    /// Its sequence number when it was written within the wait.
    /// Waits for the write a few seconds at most (others are told after it, as always, unless
    /// the store is away); the writer keeps it and retries until it is written.
    async fn event_kept(
        &self,
        session: SessionId,
        at: DateTime<Utc>,
        who: Option<(ParticipantId, Role)>,
        kind: PresenceKind,
        detail: Option<String>,
    ) -> Option<i64> {
        self.event_kept_announced(session, new_event(at, who, kind, detail))
            .await
    }

    /// [`Hub::event_kept`] of an event that may carry its webhook.
    async fn event_kept_announced(&self, session: SessionId, event: NewEvent) -> Option<i64> {
        match self.event_kept_outcome(session, event).await {
            Some(telesoin_store::Appended::Written(seq)) => Some(seq),
            _ => None,
        }
    }

    /// [`Hub::event_kept_announced`], saying what the store answered within the wait (None:
    /// still queued, it will be written; or refused for good).
    async fn event_kept_outcome(
        &self,
        session: SessionId,
        event: NewEvent,
    ) -> Option<telesoin_store::Appended> {
        let kind = event.kind;
        let rx = self.writer.submit(session, event, true);
        match tokio::time::timeout(KEPT_WAIT, rx).await {
            Ok(Ok(Ok(appended))) => {
                match appended {
                    telesoin_store::Appended::Written(_) => {}
                    telesoin_store::Appended::SeatLeft => tracing::debug!(
                        kind = kind.as_str(),
                        "the seat had already left: not recorded again"
                    ),
                    telesoin_store::Appended::Superseded => tracing::debug!(
                        kind = kind.as_str(),
                        "the seat changed since this was decided: not recorded"
                    ),
                }
                Some(appended)
            }
            // Logged and counted by the writer: never to be written (its session is gone).
            Ok(Ok(Err(telesoin_store::StoreError::Rejected(_)))) => None,
            _ => {
                tracing::warn!(
                    kind = kind.as_str(),
                    "presence event still queued for the store: it will be written"
                );
                None
            }
        }
    }

    /// Presence events waiting for the store (`/metrics`).
    pub fn presence_queued(&self) -> usize {
        self.writer.queued()
    }

    /// Presence events the store refused for good since start (`/metrics`).
    pub fn presence_rejected(&self) -> u64 {
        self.writer.rejected()
    }

    /// A write the record needs failed: from now on the node is not ready and admits nobody,
    /// until [`Hub::check_store`] sees writing work again.
    fn write_failed(
        &self,
        session: Option<SessionId>,
        at: DateTime<Utc>,
        e: telesoin_store::StoreError,
    ) -> RefusalCode {
        if let telesoin_store::StoreError::Unavailable(reason) = &e {
            self.cfg.health.write_failed(session, at, reason);
        }
        store_down(e)
    }

    /// What the node knows of its store's writes and its disk.
    pub fn health(&self) -> &Arc<crate::health::Health> {
        &self.cfg.health
    }

    /// Measures the disk; while writes fail, tries to record the gap in every session that lost
    /// an event (an `incident` `store_gap_{N}s`, N the seconds since the first failure). When
    /// every one of them is written, writing works again: the node is ready and admits again.
    pub async fn check_store(&self, now: DateTime<Utc>) {
        let health = &self.cfg.health;
        health.check_disk();
        let Some(gap) = health.gap() else {
            return;
        };
        let seconds = (now - gap.since).num_seconds().max(0);
        for session in &gap.sessions {
            let incident = NewEvent {
                at: now,
                participant: None,
                role: None,
                kind: PresenceKind::Incident,
                detail: Some(format!("store_gap_{seconds}s")),
                announce: None,
                opens_session: false,
                expect_last_seq: None,
            };
            match self.store.append_event(*session, &incident).await {
                Ok(_) => {}
                // The session is gone (deleted, purged): nothing to record the gap in.
                Err(telesoin_store::StoreError::Rejected(_)) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the store still refuses writes");
                    return;
                }
            }
        }
        if health.writes_back(&gap).is_some() {
            tracing::warn!(
                sessions = gap.sessions.len(),
                seconds,
                "writes failed for a while: the gap is recorded as an incident"
            );
            self.apply_pending_ends(now).await;
        }
    }

    /// A kiné's hang-up that could not be written: kept, to end the session as of `at` once the
    /// store writes again (the kiné was told `unavailable`; everyone hears `ended` then).
    fn keep_pending_end(&self, session: SessionId, at: DateTime<Utc>) {
        let mut pending = self.pending_ends.lock();
        if !pending.iter().any(|(s, _)| *s == session) {
            pending.push((session, at));
        }
    }

    async fn apply_pending_ends(&self, now: DateTime<Utc>) {
        let pending = std::mem::take(&mut *self.pending_ends.lock());
        for (session, at) in pending {
            match self.end_session_at(session, "hangup", at, now).await {
                Ok(billable) => tracing::info!(
                    session = %session,
                    billable_seconds = billable,
                    "a hang-up kept while the store could not write ended the session"
                ),
                Err(RefusalCode::Unavailable) => self.keep_pending_end(session, at),
                Err(code) => {
                    tracing::info!(session = %session, code = code.code(), "kept hang-up dropped")
                }
            }
        }
    }

    async fn send(&self, to: ParticipantId, frame: Outbound) {
        if let Err(e) = self.bus.deliver(to, frame).await {
            tracing::warn!(error = %e, "bus delivery failed");
        }
    }

    async fn send_to(&self, to: Attachment, frame: Outbound) {
        if let Err(e) = self.bus.deliver_to(to, frame).await {
            tracing::warn!(error = %e, "bus delivery failed");
        }
    }

    /// Tells `to` that `participant` left (`reconnecting` while its seat is kept).
    async fn peer_left(
        &self,
        to: &[ParticipantId],
        participant: ParticipantId,
        reconnecting: bool,
    ) {
        let frame = text(&ServerMsg::PeerLeft {
            participant: participant.0,
            reconnecting,
        });
        for p in to {
            self.send(*p, frame.clone()).await;
        }
    }

    async fn role_of(
        &self,
        session: SessionId,
        participant: ParticipantId,
    ) -> HubResult<Option<Role>> {
        self.rooms
            .read(session, |r| r.seats.get(&participant).map(|s| s.role))
            .await
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }
}
