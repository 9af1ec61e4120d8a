//! Restoring the shared state from the durable record: when Redis loses the rooms (restarted
//! empty, flushed, a key evicted), the seats of the sockets this node still holds are put back,
//! with the admission and the kiné's authority the persisted events give them, so that hang-up,
//! admit and relay keep working. Nothing is admitted that the record would refuse: a seat is put
//! back only while its last arrival (`joined`/`reconnected`) is not followed by a `left` or
//! `refused`, in a session that is still open, and it is admitted only if its last `admitted`
//! stands (the rule `join` applies to a seat it does not know).
//!
//! Three triggers, all only in a cluster (a single node's rooms live as long as its sockets):
//! - lazily, when a socket's message is refused for want of its seat (or of its target's, on
//!   this node), [`Hub::restore_seat`] restores the room and the message is handled once more;
//! - at each join, before the seat is announced, so that the seats this node holds hear of it
//!   (a seat on another node is put back by that node's check, without hearing of the join);
//! - eagerly, every 2 s, [`Hub::check_shared_state`] looks for this node's marker key
//!   (`ts:mark:{node}`, written at the first check); gone means the shared state was lost, and
//!   every room with a socket here is restored and every socket's location recorded again
//!   (within 2 s the other nodes' seats are back too, so that `ended` and relays reach them).

use chrono::{DateTime, Utc};
use telesoin_bus::Attachment;
use telesoin_core::billing::PresenceKind;
use telesoin_core::model::Role;
use telesoin_core::{ParticipantId, RefusalCode, SessionId};
use telesoin_store::EventRow;

use telesoin_proto::signal::{self as wire, ServerMsg};

use super::{Hub, HubResult, Joined, Seat, store_down, text, wire_role};

/// A socket this node holds, and the seat it stands for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalSocket {
    session: SessionId,
    role: Role,
    attachment: Attachment,
}

/// How long this node's marker lives without being rewritten (it is rewritten every hour).
const MARK_TTL: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

/// What the durable record says of one seat: (in the room, admitted).
pub(crate) fn durable_seat(events: &[EventRow], participant: ParticipantId) -> (bool, bool) {
    let own = || events.iter().filter(|e| e.participant == Some(participant));
    let present = own().fold(false, |present, e| match e.kind {
        PresenceKind::Joined | PresenceKind::Reconnected => true,
        PresenceKind::Left | PresenceKind::Refused => false,
        _ => present,
    });
    let admitted = own()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find_map(|e| match e.kind {
            PresenceKind::Admitted => Some(true),
            // A hang-up or a leave keeps the admission for a return in the session.
            PresenceKind::Left if matches!(e.detail.as_deref(), Some("hangup" | "leave")) => None,
            PresenceKind::Left | PresenceKind::Refused => Some(false),
            _ => None,
        })
        .unwrap_or(false);
    (present, admitted)
}

/// Whether the kiné let this seat in since it arrived (an `admitted_by_kine` after its last
/// `joined`, with no `left` or `refused` since), as the room's `admitted_by_kine` had it: a
/// seat put back in the lobby then enters as soon as nothing else keeps it waiting.
pub(crate) fn durable_admitted_by_kine(events: &[EventRow], participant: ParticipantId) -> bool {
    events
        .iter()
        .filter(|e| e.participant == Some(participant))
        .fold(false, |by_kine, e| match e.kind {
            PresenceKind::AdmittedByKine => true,
            PresenceKind::Joined | PresenceKind::Left | PresenceKind::Refused => false,
            _ => by_kine,
        })
}

/// What restoring `restored` owes the room: every admitted seat put back and every admitted
/// seat that joined since the room was lost (attached on a socket that was not put back, the
/// `joining` one aside) hear of each other, as a join would have told them. The seats put
/// back were in the call together before the loss: they need nothing.
fn restored_announcements(
    room: &super::Room,
    restored: &[(LocalSocket, bool)],
    joining: Option<ParticipantId>,
) -> Vec<(ParticipantId, wire::PeerInfo)> {
    let info = |p: ParticipantId, role: Role| wire::PeerInfo {
        participant: p.0,
        role: wire_role(role),
        admitted: true,
    };
    let joined_since: Vec<(ParticipantId, Role)> = room
        .seats
        .iter()
        .filter(|(p, s)| {
            s.admitted
                && s.attachment.is_some()
                && room.restored.get(p) != s.attachment.as_ref()
                && Some(**p) != joining
        })
        .map(|(p, s)| (*p, s.role))
        .collect();
    let mut told = Vec::new();
    for (s, admitted) in restored {
        if !admitted {
            continue; // A lobby seat is evaluated again: the kiné hears it waiting.
        }
        let me = (s.attachment.participant, s.role);
        for other in &joined_since {
            told.push((me.0, info(other.0, other.1)));
            told.push((other.0, info(me.0, me.1)));
        }
    }
    told
}

/// The seats other than `me` that the durable record has in the room and admitted.
pub(crate) fn durable_admitted_others(
    events: &[EventRow],
    me: ParticipantId,
) -> Vec<ParticipantId> {
    let mut seats: Vec<ParticipantId> = events
        .iter()
        .filter_map(|e| e.participant)
        .filter(|p| *p != me)
        .collect();
    seats.sort_by_key(|p| p.0);
    seats.dedup();
    seats
        .into_iter()
        .filter(|p| durable_seat(events, *p) == (true, true))
        .collect()
}

impl Hub {
    /// A socket of this node was seated (after a successful join).
    pub fn socket_seated(&self, joined: &Joined) {
        self.local.lock().insert(
            joined.attachment.participant,
            LocalSocket {
                session: joined.session,
                role: joined.role,
                attachment: joined.attachment,
            },
        );
    }

    /// A socket of this node ended (a newer one of the same participant stays registered).
    pub fn socket_ended(&self, attachment: Attachment) {
        let mut local = self.local.lock();
        if local
            .get(&attachment.participant)
            .is_some_and(|s| s.attachment == attachment)
        {
            local.remove(&attachment.participant);
        }
    }

    /// A message of this socket was refused for want of a seat: restores the room from the
    /// durable record if the shared state lost it. True when a seat was put back (the message
    /// is worth handling again).
    pub async fn restore_seat(&self, session: SessionId, now: DateTime<Utc>) -> bool {
        if !self.is_cluster() {
            return false;
        }
        match self.restore_room(session, None, now).await {
            Ok(n) => n > 0,
            Err(code) => {
                tracing::warn!(code = code.code(), "room not restored");
                false
            }
        }
    }

    /// Right after a join's welcome, before the joining seat is announced: the other seats
    /// this node holds come back first, so that the announcement reaches them (and the joining
    /// seat is not told of them twice: its own announcement lists them).
    pub async fn restore_for_join(&self, joined: &Joined, now: DateTime<Utc>) {
        if !self.is_cluster() {
            return;
        }
        let joining = Some(joined.attachment.participant);
        if let Err(code) = self.restore_room(joined.session, joining, now).await {
            tracing::warn!(code = code.code(), "room not restored");
        }
    }

    /// Every 2 s in a cluster: if this node's marker is gone, the shared state was lost;
    /// restore every room this node has a socket in.
    pub async fn check_shared_state(&self, now: DateTime<Utc>) {
        let Some(state) = self.rooms.shared_state() else {
            return;
        };
        let key = format!("ts:mark:{}", self.bus.node());
        let hour = (now.timestamp() / 3600).to_string();
        let current = match state.get(&key).await {
            Ok(v) => v,
            Err(_) => return, // Unreachable: fail closed elsewhere, look again later.
        };
        let lost = current.is_none() && self.marked.load(std::sync::atomic::Ordering::Relaxed);
        if current.as_deref() != Some(hour.as_str()) {
            let written = state
                .update(&key, MARK_TTL, &mut |_| Some(hour.clone()))
                .await;
            if written.is_err() {
                return;
            }
            self.marked
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if !lost {
            return;
        }
        // Nothing this node copied from the lost state may let a frame go any more.
        self.rooms.forget_all();
        let sockets: Vec<LocalSocket> = self.local.lock().values().copied().collect();
        tracing::warn!(
            sockets = sockets.len(),
            "the shared state was lost: restoring this node's seats from the record"
        );
        for s in &sockets {
            if let Err(e) = self.bus.refresh(s.attachment).await {
                tracing::warn!(error = %e, "location not recorded again");
            }
        }
        let mut sessions: Vec<SessionId> = sockets.iter().map(|s| s.session).collect();
        sessions.sort_by_key(|s| s.0);
        sessions.dedup();
        for session in sessions {
            if let Err(code) = self.restore_room(session, None, now).await {
                tracing::warn!(code = code.code(), "room not restored");
            }
        }
    }

    /// Puts back the seats of this node's sockets in `session` that the room lacks, as the
    /// durable record has them, and announces them as a join would to the seats that joined
    /// since the room was lost (`joining`, whose own announcement follows, aside). Returns how
    /// many were put back.
    async fn restore_room(
        &self,
        session: SessionId,
        joining: Option<ParticipantId>,
        now: DateTime<Utc>,
    ) -> HubResult<usize> {
        let mine: Vec<LocalSocket> = self
            .local
            .lock()
            .values()
            .filter(|s| s.session == session)
            .copied()
            .collect();
        if mine.is_empty() {
            return Ok(0);
        }
        let missing: Vec<LocalSocket> = self
            .rooms
            .read(session, |r| {
                mine.iter()
                    .filter(|s| !r.seats.contains_key(&s.attachment.participant))
                    .copied()
                    .collect()
            })
            .await?;
        if missing.is_empty() {
            return Ok(0);
        }
        let row = self
            .store
            .session(session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        if row.session.status.is_closed() {
            return Ok(0);
        }
        let events = self.store.events(session).await.map_err(store_down)?;
        let back: Vec<(LocalSocket, bool, bool)> = missing
            .into_iter()
            .filter_map(|s| {
                let p = s.attachment.participant;
                let (present, admitted) = durable_seat(&events, p);
                let by_kine = admitted || durable_admitted_by_kine(&events, p);
                present.then_some((s, admitted, by_kine))
            })
            .collect();
        let (restored, lobby, told) = self
            .rooms
            .update(session, |room| {
                let mut restored = Vec::new();
                // A mark whose seat moved to another socket (a rejoin) or left is stale.
                let seats = &room.seats;
                room.restored
                    .retain(|p, a| seats.get(p).and_then(|s| s.attachment) == Some(*a));
                for (s, admitted, by_kine) in &back {
                    let p = s.attachment.participant;
                    if room.seats.contains_key(&p) {
                        continue; // Put back meanwhile (a join, another trigger).
                    }
                    room.seats.insert(
                        p,
                        Seat {
                            role: s.role,
                            attachment: Some(s.attachment),
                            admitted: *admitted,
                            admitted_by_kine: *by_kine,
                            attested: None,
                            media: false,
                            report: None,
                            evidence_at: None,
                            lost_at: None,
                            waiting: None,
                        },
                    );
                    room.restored.insert(p, s.attachment);
                    restored.push((*s, *admitted));
                }
                let lobby: Vec<ParticipantId> = room
                    .seats
                    .iter()
                    .filter(|(_, seat)| !seat.admitted && seat.attachment.is_some())
                    .map(|(p, _)| *p)
                    .collect();
                let told = restored_announcements(room, &restored, joining);
                (restored, lobby, told)
            })
            .await?;
        for (s, _) in &restored {
            let who = Some((s.attachment.participant, s.role));
            let detail = Some("shared_state_lost".to_owned());
            self.event(session, now, who, PresenceKind::Incident, detail)
                .await?;
            if let Err(e) = self.bus.refresh(s.attachment).await {
                tracing::warn!(error = %e, "location not recorded again");
            }
        }
        tracing::warn!(session = %session, seats = restored.len(), "seats restored from the record");
        // A join since the loss was announced to a room without these seats: each side hears
        // of the other now (the kiné offers), once.
        for (to, peer) in told {
            self.send(to, text(&ServerMsg::PeerJoined { peer })).await;
        }
        // The lobby hears what it waits for again (the kiné's arrival changes it).
        let kine_back = restored.iter().any(|(s, a)| *a && s.role == Role::Kine);
        for p in lobby {
            let restored_here = restored.iter().any(|(s, _)| s.attachment.participant == p);
            if kine_back || restored_here {
                self.forget_waiting(session, p).await;
                Box::pin(self.evaluate(session, p, now)).await;
            }
        }
        Ok(restored.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ev(seq: i64, p: ParticipantId, kind: PresenceKind, detail: Option<&str>) -> EventRow {
        EventRow {
            seq,
            at: Utc
                .timestamp_opt(1_800_000_000 + seq, 0)
                .single()
                .expect("t"),
            participant: Some(p),
            role: Some(Role::Patient),
            kind,
            detail: detail.map(str::to_owned),
        }
    }

    #[test]
    fn the_record_says_whom_the_kine_let_in() {
        use PresenceKind::*;
        let p = ParticipantId(uuid::Uuid::new_v4());
        let other = ParticipantId(uuid::Uuid::new_v4());
        let by_kine = |kinds: &[PresenceKind]| {
            let mut rows: Vec<EventRow> = kinds
                .iter()
                .enumerate()
                .map(|(i, k)| ev(i as i64, p, *k, None))
                .collect();
            rows.push(ev(99, other, AdmittedByKine, None));
            durable_admitted_by_kine(&rows, p)
        };
        assert!(!by_kine(&[Joined, Waiting]), "waiting, not let in");
        assert!(by_kine(&[Joined, Waiting, AdmittedByKine]));
        assert!(
            by_kine(&[Joined, Waiting, AdmittedByKine, Waiting, Reconnected]),
            "still waiting for its consent, or its page reloaded: the kiné's word stands"
        );
        assert!(
            !by_kine(&[Joined, AdmittedByKine, Left, Joined]),
            "a new arrival waits to be let in again, as a new seat in the room does"
        );
        assert!(!by_kine(&[Joined, AdmittedByKine, Refused]));
    }

    #[test]
    fn the_record_says_who_is_in_the_room_and_admitted() {
        use PresenceKind::*;
        let p = ParticipantId(uuid::Uuid::new_v4());
        let other = ParticipantId(uuid::Uuid::new_v4());
        let seat = |evs: &[(PresenceKind, Option<&str>)]| {
            let mut rows: Vec<EventRow> = evs
                .iter()
                .enumerate()
                .map(|(i, (k, d))| ev(i as i64, p, *k, *d))
                .collect();
            rows.push(ev(99, other, Admitted, None));
            durable_seat(&rows, p)
        };
        assert_eq!(seat(&[]), (false, false), "never joined");
        assert_eq!(seat(&[(Joined, None), (Waiting, None)]), (true, false));
        assert_eq!(seat(&[(Joined, None), (Admitted, None)]), (true, true));
        assert_eq!(
            seat(&[
                (Joined, None),
                (Admitted, None),
                (SocketLost, None),
                (Reconnected, None)
            ]),
            (true, true),
            "a reconnect keeps the admission"
        );
        assert_eq!(
            seat(&[(Joined, None), (Admitted, None), (Left, Some("hangup"))]),
            (false, true),
            "hung up: not in the room (its admission stands for a return)"
        );
        assert_eq!(
            seat(&[
                (Joined, None),
                (Admitted, None),
                (Left, Some("hangup")),
                (Joined, None)
            ]),
            (true, true)
        );
        assert_eq!(
            seat(&[
                (Joined, None),
                (Admitted, None),
                (Refused, Some("token_revoked"))
            ]),
            (false, false)
        );
        assert_eq!(
            seat(&[
                (Joined, None),
                (Admitted, None),
                (Left, Some("consent_withdrawn")),
                (Joined, None)
            ]),
            (true, false),
            "a refusal's left ends the admission"
        );
    }
}
