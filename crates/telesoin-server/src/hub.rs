//! The hub: rooms, seats, admission and relay.
//!
//! One room per open session, one seat per participant. A seat outlives its socket for the grace
//! period, so a reconnect with the same token finds it (and its admission) again. Every decision
//! about who may enter is asked of `telesoin-core`; every frame leaves through the [`Bus`].
//!
//! Invariants:
//! - nothing is relayed from or to a seat that is not admitted, nor across rooms;
//! - relayed payloads are forwarded byte for byte (`data` is never re-serialized);
//! - presence events are appended with server time before anyone is told;
//! - a session is finalized exactly once (the store's guard), by hangup, end, or the sweep.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use telesoin_bus::{Attachment, Bus, Outbound, SharedState};
use telesoin_core::admission::{self, AdmissionInput, Decision, InPersonRule, WaitReason};
use telesoin_core::billing::{self, PresenceKind};
use telesoin_core::claims::VerifiedClaims;
use telesoin_core::model::{Companion, Consent, ConsentRecorder, Role, SessionStatus};
use telesoin_core::{ParticipantId, PatientId, RefusalCode, SessionId, acts};
use telesoin_proto::signal::{self as wire, ServerMsg};
use telesoin_store::{NewEvent, SessionRow, Store};
use tokio::sync::mpsc;

use crate::error::refusal_body;
use crate::events::{DomainEvent, Events};
use crate::rooms::{RoomValue, Rooms};

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
    pub in_person_rule: InPersonRule,
    pub ice: crate::turn::IceConfig,
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
    /// When the socket was lost, while the seat waits for a reconnect.
    lost_at: Option<DateTime<Utc>>,
    /// The last reason this seat was told to wait.
    waiting: Option<wire::WaitReason>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Room {
    seats: HashMap<ParticipantId, Seat>,
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
}

pub struct Hub {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    cfg: HubConfig,
    /// In this process (one node) or shared by the cluster; see [`crate::rooms`].
    rooms: Rooms<Room>,
    draining: AtomicBool,
    events: Arc<Events>,
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
        Arc::new(Hub {
            store,
            bus,
            cfg,
            rooms,
            draining: AtomicBool::new(false),
            events,
        })
    }

    fn is_cluster(&self) -> bool {
        matches!(self.rooms, Rooms::Shared(_))
    }

    /// Where domain events go (audit trail, webhooks).
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    pub fn grace(&self) -> Duration {
        self.cfg.grace
    }

    async fn event(
        &self,
        session: SessionId,
        at: DateTime<Utc>,
        who: Option<(ParticipantId, Role)>,
        kind: PresenceKind,
        detail: Option<String>,
    ) -> HubResult<i64> {
        self.store
            .append_event(
                session,
                &NewEvent {
                    at,
                    participant: who.map(|w| w.0),
                    role: who.map(|w| w.1),
                    kind,
                    detail,
                },
            )
            .await
            .map_err(store_down)
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

    /// The session a verified link belongs to, once the link is known, unrevoked and matches
    /// its seat. A link of a session that is over says so (`session_ended`/`session_cancelled`)
    /// rather than just "revoked". Shared by the join and the join page's preview.
    pub async fn linked_session(
        &self,
        claims: &VerifiedClaims,
        now: DateTime<Utc>,
    ) -> HubResult<SessionRow> {
        let seat = self
            .store
            .link(claims.jti())
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::TokenInvalid)?;
        let row = self
            .store
            .session(seat.session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        if seat.revoked && row.session.status.is_closed() && seat.session == claims.session() {
            admission::session_open(&row.session, now)?;
        }
        telesoin_core::claims::check_seat(claims, &seat)?;
        Ok(row)
    }

    /// Seats a verified participant. The returned welcome is sent first; then [`Hub::evaluate`].
    pub async fn join(
        &self,
        claims: &VerifiedClaims,
        sink: mpsc::Sender<Outbound>,
        now: DateTime<Utc>,
    ) -> HubResult<Joined> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(RefusalCode::ShuttingDown);
        }
        let row = self.linked_session(claims, now).await?;
        admission::room_open(claims.role(), &row.session, now)?;
        let kine = self
            .store
            .kine(row.session.kine)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        let act = acts::find(&row.session.act_code);
        let participant = claims.participant();
        let role = claims.role();

        // A seat this node does not hold may still be admitted: the server restarted, or another
        // node held it. The persisted events say so (admitted, and not left or refused since).
        let known = self
            .rooms
            .read(row.session.id, |r| r.seats.contains_key(&participant))
            .await?;
        let admitted_before = if known {
            false
        } else {
            let events = self
                .store
                .events(row.session.id)
                .await
                .map_err(store_down)?;
            events
                .iter()
                .rev()
                .filter(|e| e.participant == Some(participant))
                .find_map(|e| match e.kind {
                    PresenceKind::Admitted => Some(true),
                    PresenceKind::Left | PresenceKind::Refused => Some(false),
                    _ => None,
                })
                .unwrap_or(false)
        };
        let (attachment, previous) = self.bus.attach(participant, sink).await.map_err(|e| {
            tracing::warn!(error = %e, "bus unavailable: refusing");
            RefusalCode::Unavailable
        })?;
        if let Some(prev) = previous {
            // Another device (or a stale socket) held the seat: it is told why, then closed.
            let _ = prev.try_send(text(&ServerMsg::Replaced));
            let _ = prev.try_send(Outbound::Close {
                code: close::REPLACED,
                reason: "replaced",
            });
        }
        let seated = self
            .rooms
            .update(row.session.id, |room| {
                let mut before = None;
                let resumed = match room.seats.get_mut(&participant) {
                    Some(s) => {
                        before = s.attachment.replace(attachment);
                        s.lost_at = None;
                        s.waiting = None;
                        true
                    }
                    None => {
                        room.seats.insert(
                            participant,
                            Seat {
                                role,
                                attachment: Some(attachment),
                                admitted: admitted_before,
                                admitted_by_kine: admitted_before,
                                attested: None,
                                media: false,
                                lost_at: None,
                                waiting: None,
                            },
                        );
                        admitted_before
                    }
                };
                (resumed, room.peers_except(participant), before)
            })
            .await;
        let (resumed, peers, before) = match seated {
            Ok(v) => v,
            Err(code) => {
                self.bus.detach(attachment).await;
                return Err(code);
            }
        };
        if let Some(old) = before.filter(|o| o.node != attachment.node) {
            // The seat was attached on another node: tell that socket it was replaced, or, if
            // that node is gone, note the incident (the record says why the call moved).
            match self.bus.node_alive(old.node).await {
                Ok(true) => {
                    let _ = self.bus.deliver_to(old, text(&ServerMsg::Replaced)).await;
                    let close = Outbound::Close {
                        code: close::REPLACED,
                        reason: "replaced",
                    };
                    let _ = self.bus.deliver_to(old, close).await;
                }
                Ok(false) => {
                    tracing::warn!(session = %row.session.id, node = old.node, "seat taken over from a lost node");
                    let who = Some((participant, role));
                    let detail = Some("node_lost".to_owned());
                    if let Err(code) = self
                        .event(row.session.id, now, who, PresenceKind::Incident, detail)
                        .await
                    {
                        self.leave_seat(row.session.id, attachment).await;
                        return Err(code);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "node liveness unknown"),
            }
        }
        let kind = if resumed {
            PresenceKind::Reconnected
        } else {
            PresenceKind::Joined
        };
        if let Err(code) = self
            .event(row.session.id, now, Some((participant, role)), kind, None)
            .await
        {
            self.leave_seat(row.session.id, attachment).await;
            return Err(code);
        }
        let welcome = ServerMsg::Welcome {
            protocol: telesoin_proto::PROTOCOL_VERSION,
            participant: participant.0,
            role: wire_role(role),
            session: wire::SessionInfo {
                session: row.session.id.0,
                kine_name: kine.name,
                starts_at: row.session.starts_at,
                act_code: row.session.act_code.clone(),
                act_label: act.map(|a| a.label.to_owned()).unwrap_or_default(),
                billing_class: row.billing_class.clone(),
                consent_text_version: telesoin_core::model::CONSENT_TEXT_VERSION.to_owned(),
            },
            // TURN credentials expire with the link: never later than the appointment window.
            ice_servers: self
                .cfg
                .ice
                .servers_for(participant, row.session.window_end + Duration::minutes(10)),
            ice_transport_policy: if row.relay_only { "relay" } else { "all" }.to_owned(),
            peers,
            resumed,
        };
        Ok(Joined {
            attachment,
            session: row.session.id,
            role,
            welcome,
            resumed,
        })
    }

    /// Removes a seat that never got going (its join failed half way).
    async fn leave_seat(&self, session: SessionId, a: Attachment) {
        self.bus.detach(a).await;
        let _ = self
            .rooms
            .update(session, |room| {
                if room
                    .seats
                    .get(&a.participant)
                    .is_some_and(|s| s.attachment == Some(a) && !s.admitted)
                {
                    room.seats.remove(&a.participant);
                }
            })
            .await;
    }

    /// Asks telesoin-core whether this seat may enter now, and acts on the answer.
    pub async fn evaluate(
        &self,
        session: SessionId,
        participant: ParticipantId,
        now: DateTime<Utc>,
    ) {
        match self.try_evaluate(session, participant, now).await {
            Ok(()) => {}
            Err(code) => {
                // The store failed: say so and keep the seat; the client may retry.
                self.send(
                    participant,
                    text(&ServerMsg::Error(refusal_body(
                        code,
                        serde_json::Value::Null,
                    ))),
                )
                .await;
            }
        }
    }

    async fn try_evaluate(
        &self,
        session: SessionId,
        participant: ParticipantId,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let row = self
            .store
            .session(session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        let seat = self
            .rooms
            .read(session, |room| {
                let seat = room.seats.get(&participant)?;
                seat.attachment?;
                Some((
                    seat.role,
                    seat.attested,
                    seat.admitted_by_kine,
                    room.kine_present(),
                    seat.admitted,
                ))
            })
            .await?;
        let Some((role, attested, admitted_by_kine, kine_present, already)) = seat else {
            return Ok(());
        };
        let decision = if role == Role::Kine {
            match admission::room_open(role, &row.session, now) {
                Ok(()) => Decision::Admit,
                Err(c) => Decision::Refuse(c),
            }
        } else {
            let patient = self
                .store
                .patient(row.session.kine, row.session.patient)
                .await
                .map_err(store_down)?
                .ok_or(RefusalCode::SessionNotFound)?;
            let visits: Vec<_> = self
                .store
                .visits(row.session.kine, row.session.patient)
                .await
                .map_err(store_down)?
                .into_iter()
                .map(|v| v.visit)
                .collect();
            let consents: Vec<_> = self
                .store
                .consents(row.session.kine, row.session.patient)
                .await
                .map_err(store_down)?
                .into_iter()
                .map(|c| c.consent)
                .collect();
            admission::decide(&AdmissionInput {
                now,
                role,
                session: &row.session,
                patient: &patient.patient,
                visits: &visits,
                consents: &consents,
                rule: self.cfg.in_person_rule,
                attested,
                kine_present,
                admitted_by_kine,
            })
        };
        match decision {
            Decision::Admit if already => Ok(()),
            Decision::Admit => self.admit_seat(&row, participant, role, now).await,
            Decision::Refuse(code) => {
                self.refuse_seat(session, participant, role, code, now)
                    .await;
                if already && role == Role::Patient {
                    // An admitted patient refused (consent withdrawn): the call is over.
                    self.end_session(session, "consent_withdrawn", now).await?;
                }
                Ok(())
            }
            Decision::Wait(_) | Decision::NeedsAttestation(_) if already => Ok(()),
            Decision::Wait(reason) => {
                self.wait_seat(session, participant, role, wire_wait(reason), now)
                    .await
            }
            Decision::NeedsAttestation(c) => {
                let reason = match c {
                    Companion::Parent => wire::WaitReason::AttestationParent,
                    Companion::Aidant => wire::WaitReason::AttestationAidant,
                };
                self.wait_seat(session, participant, role, reason, now)
                    .await
            }
        }
    }

    async fn admit_seat(
        &self,
        row: &SessionRow,
        participant: ParticipantId,
        role: Role,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let session = row.session.id;
        self.event(
            session,
            now,
            Some((participant, role)),
            PresenceKind::Admitted,
            None,
        )
        .await?;
        if row.session.status == SessionStatus::Scheduled {
            self.store
                .transition(session, &[SessionStatus::Scheduled], SessionStatus::Live)
                .await
                .map_err(store_down)?;
        }
        self.rooms
            .update(session, |r| {
                if let Some(seat) = r.seats.get_mut(&participant) {
                    seat.admitted = true;
                }
            })
            .await?;
        self.events
            .emit(
                now,
                DomainEvent::ParticipantAdmitted {
                    session,
                    participant,
                    role,
                },
            )
            .await;
        self.announce(session, participant, now).await;
        Ok(())
    }

    /// Tells an admitted seat who is in the call, and the call that it is in. A reconnecting seat
    /// goes through here again, so the kiné re-offers (with an ICE restart).
    async fn announce(&self, session: SessionId, participant: ParticipantId, now: DateTime<Utc>) {
        let told = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.get_mut(&participant)?;
                if !seat.admitted {
                    return None;
                }
                seat.waiting = None;
                let role = seat.role;
                let me = wire::PeerInfo {
                    participant: participant.0,
                    role: wire_role(role),
                    admitted: true,
                };
                let peers: Vec<_> = room
                    .peers_except(participant)
                    .into_iter()
                    .filter(|p| p.admitted)
                    .collect();
                let notify: Vec<_> = room
                    .admitted_others(participant)
                    .into_iter()
                    .map(|p| (p, me.clone()))
                    .collect();
                let lobby: Vec<_> = room
                    .seats
                    .iter()
                    .filter(|(p, s)| **p != participant && !s.admitted && s.attachment.is_some())
                    .map(|(p, _)| *p)
                    .collect();
                Some((role, peers, notify, lobby))
            })
            .await;
        let Ok(Some((role, peers, notify, lobby))) = told else {
            return;
        };
        self.send(participant, text(&ServerMsg::Admitted { peers }))
            .await;
        for (p, me) in notify {
            self.send(p, text(&ServerMsg::PeerJoined { peer: me }))
                .await;
        }
        if role == Role::Kine {
            // The kiné's arrival changes what everyone in the lobby waits for.
            for p in lobby {
                // Forget what the seat was last told, so that the kiné hears it too.
                self.forget_waiting(session, p).await;
                Box::pin(self.evaluate(session, p, now)).await;
            }
        }
    }

    /// Right after `welcome`: a seat that kept its admission across a reconnect is announced
    /// again; any other is evaluated.
    pub async fn after_join(
        &self,
        session: SessionId,
        participant: ParticipantId,
        now: DateTime<Utc>,
    ) {
        let admitted = self
            .rooms
            .read(session, |r| {
                r.seats.get(&participant).is_some_and(|s| s.admitted)
            })
            .await
            .unwrap_or(false);
        if admitted {
            self.announce(session, participant, now).await;
        } else {
            self.evaluate(session, participant, now).await;
        }
    }

    /// Forgets what a seat was last told to wait for, so that it is told (and the kiné too) again.
    async fn forget_waiting(&self, session: SessionId, participant: ParticipantId) {
        let _ = self
            .rooms
            .update(session, |r| {
                if let Some(seat) = r.seats.get_mut(&participant) {
                    seat.waiting = None;
                }
            })
            .await;
    }

    async fn wait_seat(
        &self,
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        reason: wire::WaitReason,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let changed = self
            .rooms
            .update(session, |room| {
                let kine = room.kine_seat().filter(|_| room.kine_present());
                let seat = room.seats.get_mut(&participant)?;
                if seat.waiting == Some(reason) {
                    return None;
                }
                seat.waiting = Some(reason);
                Some(kine)
            })
            .await?;
        let Some(kine) = changed else {
            return Ok(());
        };
        let detail = serde_json::to_value(reason)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        self.event(
            session,
            now,
            Some((participant, role)),
            PresenceKind::Waiting,
            detail,
        )
        .await?;
        let reason_name = match reason {
            wire::WaitReason::KineAbsent => "kine_absent",
            wire::WaitReason::AwaitingAdmission => "awaiting_admission",
            wire::WaitReason::ConsentRequired => "consent_required",
            wire::WaitReason::AttestationParent => "attestation_parent",
            wire::WaitReason::AttestationAidant => "attestation_aidant",
        };
        let waiting = DomainEvent::ParticipantWaiting {
            session,
            participant,
            role,
            reason: reason_name,
        };
        self.events.emit(now, waiting).await;
        self.send(participant, text(&ServerMsg::Waiting { reason }))
            .await;
        if let Some(k) = kine {
            self.send(
                k,
                text(&ServerMsg::LobbyWaiting {
                    participant: participant.0,
                    role: wire_role(role),
                    reason,
                }),
            )
            .await;
        }
        Ok(())
    }

    async fn refuse_seat(
        &self,
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        code: RefusalCode,
        now: DateTime<Utc>,
    ) {
        let was_admitted = self
            .rooms
            .read(session, |r| {
                r.seats.get(&participant).is_some_and(|s| s.admitted)
            })
            .await
            .unwrap_or(false);
        if was_admitted {
            // The seat is over: its connected time stops counting now.
            let detail = Some(code.code().to_owned());
            let who = Some((participant, role));
            let _ = self
                .event(session, now, who, PresenceKind::Left, detail)
                .await;
        }
        let _ = self
            .event(
                session,
                now,
                Some((participant, role)),
                PresenceKind::Refused,
                Some(code.code().to_owned()),
            )
            .await;
        let refused = DomainEvent::AdmissionRefused {
            session,
            participant,
            role,
            code: code.code(),
        };
        self.events.emit(now, refused).await;
        self.send(
            participant,
            text(&ServerMsg::Refused(refusal_body(
                code,
                serde_json::Value::Null,
            ))),
        )
        .await;
        self.send(
            participant,
            Outbound::Close {
                code: close::REFUSED,
                reason: "refused",
            },
        )
        .await;
        let Ok((attachment, notify)) = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.remove(&participant);
                let notify = room.admitted_others(participant);
                (seat.and_then(|s| s.attachment), notify)
            })
            .await
        else {
            return;
        };
        if let Some(a) = attachment {
            self.bus.detach(a).await;
        }
        self.peer_left(&notify, participant, false).await;
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

    /// The patient attests who is present next to them.
    pub async fn attest(
        &self,
        session: SessionId,
        participant: ParticipantId,
        companion: Companion,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        self.rooms
            .update(session, |r| {
                let seat = r
                    .seats
                    .get_mut(&participant)
                    .ok_or(RefusalCode::NotAllowed)?;
                if seat.role != Role::Patient {
                    return Err(RefusalCode::NotAllowed);
                }
                seat.attested = Some(companion);
                seat.waiting = None;
                Ok(())
            })
            .await??;
        let detail = match companion {
            Companion::Parent => "parent",
            Companion::Aidant => "aidant",
        };
        self.event(
            session,
            now,
            Some((participant, Role::Patient)),
            PresenceKind::Incident,
            Some(format!("attested_{detail}")),
        )
        .await?;
        self.evaluate(session, participant, now).await;
        Ok(())
    }

    /// The patient consents on the join page (traced: by the patient, join_page, text version).
    pub async fn consent(
        &self,
        session: SessionId,
        participant: ParticipantId,
        text_version: &str,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        if text_version != telesoin_core::model::CONSENT_TEXT_VERSION {
            return Err(RefusalCode::BadMessage);
        }
        let role = self
            .role_of(session, participant)
            .await?
            .ok_or(RefusalCode::NotAllowed)?;
        if role != Role::Patient {
            return Err(RefusalCode::NotAllowed);
        }
        let row = self
            .store
            .session(session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        if !row.session.patient_consent_on_join {
            return Err(RefusalCode::NotAllowed);
        }
        let consent = Consent {
            recorded_by: ConsentRecorder::Patient,
            method: "join_page".into(),
            text_version: text_version.to_owned(),
            recorded_at: now,
            withdrawn_at: None,
        };
        self.store
            .add_consent(
                row.session.kine,
                row.session.patient,
                uuid::Uuid::new_v4(),
                &consent,
            )
            .await
            .map_err(store_down)?;
        let recorded = DomainEvent::ConsentRecorded {
            kine: row.session.kine,
            patient: row.session.patient,
            by: "patient",
        };
        self.events.emit(now, recorded).await;
        self.forget_waiting(session, participant).await;
        self.evaluate(session, participant, now).await;
        Ok(())
    }

    /// The kiné lets a waiting participant in.
    pub async fn admit(
        &self,
        session: SessionId,
        by: ParticipantId,
        target: ParticipantId,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        self.rooms
            .update(session, |room| {
                let by_seat = room.seats.get(&by).ok_or(RefusalCode::NotAllowed)?;
                if by_seat.role != Role::Kine || !by_seat.admitted {
                    return Err(RefusalCode::NotAllowed);
                }
                let seat = room
                    .seats
                    .get_mut(&target)
                    .ok_or(RefusalCode::UnknownPeer)?;
                seat.admitted_by_kine = true;
                Ok(())
            })
            .await??;
        self.evaluate(session, target, now).await;
        Ok(())
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

    /// Relays an offer, answer or candidate, byte for byte, between admitted seats of one room.
    pub async fn relay(
        &self,
        session: SessionId,
        from: ParticipantId,
        kind: &'static str,
        to: Option<uuid::Uuid>,
        data: &RawValue,
    ) -> HubResult<()> {
        let targets = self
            .rooms
            .read(session, |room| {
                if !room.seats.get(&from).is_some_and(|s| s.admitted) {
                    return Err(RefusalCode::NotAdmitted);
                }
                match to {
                    Some(t) => {
                        let t = ParticipantId(t);
                        match room.seats.get(&t) {
                            Some(s) if t != from && s.admitted && s.attachment.is_some() => {
                                Ok(vec![t])
                            }
                            _ => Err(RefusalCode::UnknownPeer),
                        }
                    }
                    None => Ok(room.admitted_others(from)),
                }
            })
            .await??;
        // The frame is assembled around the untouched payload: no re-serialization of `data`.
        let frame: Arc<str> = format!(
            r#"{{"type":"{kind}","from":"{}","data":{}}}"#,
            from.0,
            data.get()
        )
        .into();
        for t in targets {
            self.send(t, Outbound::Text(frame.clone())).await;
        }
        Ok(())
    }

    /// The client's media state changed; this is what billing counts.
    pub async fn media(
        &self,
        session: SessionId,
        participant: ParticipantId,
        state: wire::MediaState,
        incident: Option<String>,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let role = self
            .rooms
            .update(session, |r| {
                let seat = r
                    .seats
                    .get_mut(&participant)
                    .ok_or(RefusalCode::NotAdmitted)?;
                if !seat.admitted {
                    return Err(RefusalCode::NotAdmitted);
                }
                seat.media = state == wire::MediaState::Connected;
                Ok(seat.role)
            })
            .await??;
        if let Some(label) = incident {
            // Only a short machine label is kept: never free text from a client.
            let clean: String = label
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(32)
                .collect();
            if !clean.is_empty() {
                self.event(
                    session,
                    now,
                    Some((participant, role)),
                    PresenceKind::Incident,
                    Some(clean),
                )
                .await?;
            }
        }
        let kind = match state {
            wire::MediaState::Connected => PresenceKind::MediaConnected,
            wire::MediaState::Disconnected => PresenceKind::MediaDisconnected,
        };
        self.event(session, now, Some((participant, role)), kind, None)
            .await?;
        let both = self
            .rooms
            .read(session, |r| {
                let on = |role| {
                    r.seats
                        .values()
                        .any(|s| s.role == role && s.admitted && s.media)
                };
                on(Role::Kine) && on(Role::Patient)
            })
            .await?;
        if state == wire::MediaState::Connected && both {
            self.events
                .emit(now, DomainEvent::CallConnected { session })
                .await;
        }
        Ok(())
    }

    /// A participant hangs up. The kiné's hangup ends the session; anyone else leaves it.
    pub async fn hangup(
        &self,
        session: SessionId,
        participant: ParticipantId,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let role = self
            .role_of(session, participant)
            .await?
            .ok_or(RefusalCode::NotAllowed)?;
        if role == Role::Kine {
            self.end_session(session, "hangup", now).await?;
            return Ok(());
        }
        self.event(
            session,
            now,
            Some((participant, role)),
            PresenceKind::Left,
            Some("hangup".into()),
        )
        .await?;
        let (attachment, notify) = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.remove(&participant);
                (
                    seat.and_then(|s| s.attachment),
                    room.admitted_others(participant),
                )
            })
            .await?;
        let billable = self.provisional_seconds(session, now).await.unwrap_or(0);
        self.send(
            participant,
            text(&ServerMsg::Ended {
                billable_seconds: billable,
                reason: "hangup".into(),
            }),
        )
        .await;
        self.send(
            participant,
            Outbound::Close {
                code: close::NORMAL,
                reason: "hangup",
            },
        )
        .await;
        if let Some(a) = attachment {
            self.bus.detach(a).await;
        }
        self.peer_left(&notify, participant, false).await;
        Ok(())
    }

    /// A socket closed without hangup: the seat is kept for the grace period.
    pub async fn socket_lost(
        self: &Arc<Self>,
        session: SessionId,
        attachment: Attachment,
        now: DateTime<Utc>,
    ) {
        self.bus.detach(attachment).await;
        let participant = attachment.participant;
        let lost = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.get_mut(&participant)?;
                if seat.attachment != Some(attachment) {
                    return None; // Replaced by a newer socket: nothing was lost.
                }
                seat.attachment = None;
                seat.lost_at = Some(now);
                let role = seat.role;
                let admitted = seat.admitted;
                if !admitted {
                    // Nobody keeps a lobby seat: it goes at once.
                    room.seats.remove(&participant);
                }
                let notify = room.admitted_others(participant);
                let lobby: Vec<ParticipantId> = room
                    .seats
                    .iter()
                    .filter(|(_, s)| !s.admitted && s.attachment.is_some())
                    .map(|(p, _)| *p)
                    .collect();
                Some((role, admitted, notify, lobby))
            })
            .await;
        let (role, admitted, notify, lobby) = match lost {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(_) => {
                // The shared state is unreachable: the seat stays as it was; the grace timer
                // still runs so that a seat nobody comes back to is eventually let go.
                let hub = Arc::clone(self);
                let grace = self.cfg.grace;
                tokio::spawn(async move {
                    tokio::time::sleep(grace.to_std().unwrap_or_default()).await;
                    hub.grace_expired(session, participant, now).await;
                });
                return;
            }
        };
        let kind = if admitted {
            PresenceKind::SocketLost
        } else {
            PresenceKind::Left
        };
        let _ = self
            .event(session, now, Some((participant, role)), kind, None)
            .await;
        self.peer_left(&notify, participant, admitted).await;
        if role == Role::Kine {
            // The lobby waits for the kiné again, and is told so.
            for p in lobby {
                self.forget_waiting(session, p).await;
                self.evaluate(session, p, now).await;
            }
        }
        if !admitted {
            return;
        }
        let hub = Arc::clone(self);
        let grace = self.cfg.grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace.to_std().unwrap_or_default()).await;
            hub.grace_expired(session, participant, now).await;
        });
    }

    async fn grace_expired(
        &self,
        session: SessionId,
        participant: ParticipantId,
        lost_at: DateTime<Utc>,
    ) {
        let expired = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.get(&participant)?;
                if seat.attachment.is_some() || seat.lost_at != Some(lost_at) {
                    return None; // Came back in time.
                }
                let role = seat.role;
                room.seats.remove(&participant);
                Some((role, room.admitted_others(participant)))
            })
            .await;
        let Ok(Some((role, notify))) = expired else {
            return;
        };
        // We stopped knowing about this participant when the socket was lost: that is when
        // they left, for the record and for billing.
        let _ = self
            .event(
                session,
                lost_at,
                Some((participant, role)),
                PresenceKind::Left,
                Some("grace_expired".into()),
            )
            .await;
        self.peer_left(&notify, participant, false).await;
    }

    /// Billable seconds so far (for a live session) or as finalized.
    pub async fn provisional_seconds(
        &self,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> HubResult<i64> {
        let events: Vec<_> = self
            .store
            .events(session)
            .await
            .map_err(store_down)?
            .iter()
            .map(|e| e.presence())
            .collect();
        Ok(billing::billable_seconds(&events, self.cfg.grace, now))
    }

    /// Ends the session: the `ended` event, then the single finalization, then everyone is told.
    /// Returns the billable seconds of the record.
    pub async fn end_session(
        &self,
        session: SessionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> HubResult<i64> {
        let row = self
            .store
            .session(session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        let billable = match row.session.status {
            SessionStatus::Cancelled => return Err(RefusalCode::SessionCancelled),
            SessionStatus::Ended => row.billable_seconds.unwrap_or(0),
            SessionStatus::Scheduled | SessionStatus::Live => {
                self.event(
                    session,
                    now,
                    None,
                    PresenceKind::Ended,
                    Some(reason.chars().take(32).collect()),
                )
                .await?;
                self.finalize(session, reason, now).await?
            }
        };
        self.store
            .revoke_session_links(session, now)
            .await
            .map_err(store_down)?;
        self.close_room(
            session,
            &ServerMsg::Ended {
                billable_seconds: billable,
                reason: reason.to_owned(),
            },
            close::ENDED,
        )
        .await;
        Ok(billable)
    }

    /// Computes billable time from the persisted events and finalizes, exactly once.
    async fn finalize(
        &self,
        session: SessionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> HubResult<i64> {
        let events: Vec<_> = self
            .store
            .events(session)
            .await
            .map_err(store_down)?
            .iter()
            .map(|e| e.presence())
            .collect();
        let ended_at = billing::ended_at(&events).unwrap_or(now);
        let billable = billing::billable_seconds(&events, self.cfg.grace, ended_at);
        if self
            .store
            .finalize(session, ended_at, billable, now)
            .await
            .map_err(store_down)?
        {
            tracing::info!(session = %session, billable_seconds = billable, "session finalized");
            if let Err(e) =
                crate::records::fix_class(self.store.as_ref(), session, self.cfg.in_person_rule)
                    .await
            {
                tracing::warn!(error = %e, "class not fixed at finalization");
            }
            let ended = DomainEvent::SessionEnded {
                session,
                billable_seconds: billable,
                reason: reason.to_owned(),
            };
            self.events.emit(now, ended).await;
            return Ok(billable);
        }
        // Someone else finalized first: theirs is the record.
        let row = self
            .store
            .session(session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        Ok(row.billable_seconds.unwrap_or(billable))
    }

    /// Cancels a session: its links die at once and anyone connected, lobby included, is refused.
    pub async fn cancel_session(&self, session: SessionId, now: DateTime<Utc>) -> HubResult<bool> {
        let moved = self
            .store
            .transition(
                session,
                &[SessionStatus::Scheduled, SessionStatus::Live],
                SessionStatus::Cancelled,
            )
            .await
            .map_err(store_down)?;
        if moved {
            self.event(session, now, None, PresenceKind::Cancelled, None)
                .await?;
        }
        self.store
            .revoke_session_links(session, now)
            .await
            .map_err(store_down)?;
        let refusal = ServerMsg::Refused(refusal_body(
            RefusalCode::SessionCancelled,
            serde_json::Value::Null,
        ));
        self.close_room(session, &refusal, close::REFUSED).await;
        Ok(moved)
    }

    /// A single link was revoked: its holder, if connected, is refused at once.
    pub async fn link_revoked(
        &self,
        session: SessionId,
        participant: ParticipantId,
        now: DateTime<Utc>,
    ) {
        let role = self.role_of(session, participant).await;
        if let Ok(Some(role)) = role {
            self.refuse_seat(session, participant, role, RefusalCode::TokenRevoked, now)
                .await;
        }
    }

    /// A consent of this patient was withdrawn: live seats are re-evaluated (and refused).
    pub async fn consent_withdrawn(&self, patient: PatientId, now: DateTime<Utc>) {
        let rooms: Vec<SessionId> = self.rooms.sessions().await.unwrap_or_default();
        for session in rooms {
            let Ok(Some(row)) = self.store.session(session).await else {
                continue;
            };
            if row.session.patient != patient {
                continue;
            }
            let seats: Vec<ParticipantId> = self
                .rooms
                .read(session, |r| {
                    r.seats
                        .iter()
                        .filter(|(_, s)| s.role != Role::Kine)
                        .map(|(p, _)| *p)
                        .collect()
                })
                .await
                .unwrap_or_default();
            for p in seats {
                self.evaluate(session, p, now).await;
            }
        }
    }

    async fn close_room(&self, session: SessionId, msg: &ServerMsg, code: u16) {
        let seats: Vec<(ParticipantId, Option<Attachment>)> = self
            .rooms
            .update(session, |r| {
                std::mem::take(&mut r.seats)
                    .into_iter()
                    .map(|(p, s)| (p, s.attachment))
                    .collect()
            })
            .await
            .unwrap_or_default();
        let frame = text(msg);
        for (_, a) in seats {
            // To the very socket the room knew, wherever it is: a later one is not this seat's.
            if let Some(a) = a {
                self.send_to(a, frame.clone()).await;
                self.send_to(
                    a,
                    Outbound::Close {
                        code,
                        reason: "session closed",
                    },
                )
                .await;
                self.bus.detach(a).await;
            }
        }
    }

    /// Live presence of a session, for the dashboard.
    pub async fn presence(&self, session: SessionId) -> Vec<telesoin_proto::rest::LivePresence> {
        self.rooms
            .read(session, |room| {
                room.seats
                    .iter()
                    .map(|(p, s)| telesoin_proto::rest::LivePresence {
                        participant: p.0,
                        role: wire_role(s.role),
                        admitted: s.admitted,
                        connected: s.attachment.is_some(),
                        media: s.media,
                    })
                    .collect()
            })
            .await
            .unwrap_or_default()
    }

    /// After a restart: finalize sessions whose end was persisted, and mark the others so that
    /// billing knows the server was away. In a cluster the other nodes still serve the live
    /// sessions: only those whose end was persisted are finalized (a node lost mid-call is noted
    /// when its seats are taken over, as `node_lost`).
    pub async fn recover(&self, now: DateTime<Utc>) -> HubResult<usize> {
        let live = self.store.live_sessions().await.map_err(store_down)?;
        for row in &live {
            let events: Vec<_> = self
                .store
                .events(row.session.id)
                .await
                .map_err(store_down)?
                .iter()
                .map(|e| e.presence())
                .collect();
            if billing::ended_at(&events).is_some() {
                self.finalize(row.session.id, "recovered", now).await?;
            } else if !self.is_cluster() {
                self.event(row.session.id, now, None, PresenceKind::NodeRestart, None)
                    .await?;
            }
        }
        Ok(live.len())
    }

    /// Ends live sessions whose window has closed and that nobody is connected to.
    pub async fn sweep(&self, now: DateTime<Utc>) -> HubResult<()> {
        for row in self.store.live_sessions().await.map_err(store_down)? {
            if row.session.window_end > now {
                continue;
            }
            let attached: Vec<Attachment> = self
                .rooms
                .read(row.session.id, |r| {
                    r.seats.values().filter_map(|s| s.attachment).collect()
                })
                .await?;
            // A socket on a node that is gone holds nobody.
            let mut empty = true;
            for a in attached {
                if a.node == self.bus.node()
                    || self.bus.node_alive(a.node).await.map_err(|e| {
                        tracing::warn!(error = %e, "bus unavailable: sweep postponed");
                        RefusalCode::Unavailable
                    })?
                {
                    empty = false;
                    break;
                }
            }
            if empty {
                self.end_session(row.session.id, "window_closed", now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Stop taking joins (/readyz says `draining`); sockets stay until [`Hub::drain`].
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Stop taking joins and tell every socket to reconnect (elsewhere or after the restart).
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        // Only the sockets this node holds: the other nodes' stay where they are.
        let node = self.bus.node();
        let mut all: Vec<Attachment> = Vec::new();
        for session in self.rooms.sessions().await.unwrap_or_default() {
            let here = self
                .rooms
                .read(session, |r| {
                    r.seats
                        .values()
                        .filter_map(|s| s.attachment)
                        .filter(|a| a.node == node)
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
            all.extend(here);
        }
        let msg = text(&ServerMsg::Error(refusal_body(
            RefusalCode::ShuttingDown,
            serde_json::Value::Null,
        )));
        for a in all {
            self.send_to(a, msg.clone()).await;
            self.send_to(
                a,
                Outbound::Close {
                    code: close::GOING_AWAY,
                    reason: "restarting",
                },
            )
            .await;
        }
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
